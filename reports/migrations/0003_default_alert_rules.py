"""Install the shipped default alert rules as platform rules (reports/alert_defaults.py)."""

from django.db import migrations


def install(apps, schema_editor):
    from reports.alert_defaults import DEFAULT_RULES, rule_fields

    AlertRule = apps.get_model("reports", "AlertRule")
    for rule in DEFAULT_RULES:
        fields = rule_fields(rule)
        AlertRule.objects.get_or_create(tenant=None, default_key=fields.pop("default_key"), defaults=fields)


def remove(apps, schema_editor):
    apps.get_model("reports", "AlertRule").objects.filter(tenant=None).exclude(default_key="").delete()


class Migration(migrations.Migration):
    dependencies = [("reports", "0002_monitoring")]

    operations = [migrations.RunPython(install, remove)]
