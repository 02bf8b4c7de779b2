"""The CDK app that deploys the system to AWS (`make synth`, `make deploy`)."""
