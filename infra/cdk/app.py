"""The CDK app: `make synth` runs it as a script, `make deploy` hands it to the cdk CLI.

    BILLING_STAGE=dev BILLING_PUBLIC_URL=https://billing-dev.example.org \
        STRIPE_PUBLISHABLE_KEY=pk_test_... CDK_OUTDIR=cdk.out python infra/cdk/app.py

Synthesis needs no AWS credentials and calls no AWS API. Run this file as a script, never
import it as a module named `app`: chalice imports the application's own `app` module.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_HERE = Path(__file__).resolve().parent
# As a script, this folder is sys.path[0], and chalice's `import app` would find this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(REPO_ROOT))

DEFAULT_STAGE = "dev"
# chalice's packager asks for a region name while it builds the template; nothing is called.
PACKAGING_REGION = "us-east-1"


@contextlib.contextmanager
def _working_dir(path: str) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def synth(stage_name: str, outdir: Path, source_dir: Path = REPO_ROOT) -> Path:
    """Write the cloud assembly for `stage_name` to `outdir`; return the template's path."""
    from infra.cdk.stage import load_stage

    stage = load_stage(stage_name, source_dir)
    os.environ.setdefault("AWS_DEFAULT_REGION", PACKAGING_REGION)

    import aws_cdk as cdk

    from infra.cdk.stack import BillingStack

    # CDK's built-in template validation takes ~20 s here; cfn-lint checks the same template
    # instead (make synth, tests/infra).
    app = cdk.App(outdir=str(outdir), builtin_cloud_formation_validation=False)
    # chalice.cdk leaves its packaging work (`chalice.out/`) in the working directory.
    with tempfile.TemporaryDirectory(prefix="chalice-out-") as scratch, _working_dir(scratch):
        stack = BillingStack(app, stage, source_dir)
        app.synth()
    return outdir / f"{stack.artifact_id}.template.json"


def main() -> None:
    from infra.cdk.functions import UnsupportedFunction
    from infra.cdk.stage import StageError

    stage_name = os.environ.get("BILLING_STAGE") or DEFAULT_STAGE
    outdir = Path(os.environ.get("CDK_OUTDIR") or REPO_ROOT / "cdk.out").resolve()
    try:
        template = synth(stage_name, outdir)
    except (StageError, UnsupportedFunction) as error:
        sys.exit(f"synth: {error}")
    print(f"synthesized stage {stage_name}: {template}", file=sys.stderr)


if __name__ == "__main__":
    main()
