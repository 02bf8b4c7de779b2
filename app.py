"""The Chalice app: registers blueprints, schedules and the SQS worker. Nothing else lives here."""

from chalice import Chalice

from chalicelib.api import auth, health

app = Chalice(app_name="membership-billing")

app.register_blueprint(auth.blueprint)
app.register_blueprint(health.blueprint)
