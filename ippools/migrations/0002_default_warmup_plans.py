"""Ship the default warm-up plans (admins may edit them or write their own)."""

from django.db import migrations


def create_plans(apps, schema_editor):
    from ippools.warmup import default_plans

    WarmupPlan = apps.get_model("ippools", "WarmupPlan")
    for plan in default_plans():
        WarmupPlan.objects.get_or_create(name=plan["name"], defaults=plan)


def remove_plans(apps, schema_editor):
    WarmupPlan = apps.get_model("ippools", "WarmupPlan")
    WarmupPlan.objects.filter(is_builtin=True, ip_addresses__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("ippools", "0001_initial")]

    operations = [migrations.RunPython(create_plans, remove_plans)]
