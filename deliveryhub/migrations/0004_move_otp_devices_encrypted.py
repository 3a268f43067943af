"""Move django-otp's TOTP devices and recovery codes (stored in clear) into our models, encrypted with the data key,
and delete the clear rows. Sessions verified with an old device must verify again (their device id is gone)."""

from django.db import migrations

TOTP_FIELDS = ("user_id", "name", "confirmed", "key", "step", "t0", "digits", "tolerance", "drift", "last_t",
               "throttling_failure_timestamp", "throttling_failure_count", "created_at", "last_used_at")  # fmt: skip
STATIC_FIELDS = ("user_id", "name", "confirmed", "throttling_failure_timestamp", "throttling_failure_count")


def encrypt_devices(apps, schema_editor):
    OldTOTP = apps.get_model("otp_totp", "TOTPDevice")
    OldStatic = apps.get_model("otp_static", "StaticDevice")
    NewTOTP = apps.get_model("deliveryhub", "EncryptedTOTPDevice")
    NewCodes = apps.get_model("deliveryhub", "RecoveryCodeDevice")
    Code = apps.get_model("deliveryhub", "RecoveryCode")
    for old in OldTOTP.objects.all():
        new = NewTOTP.objects.create(**{field: getattr(old, field) for field in TOTP_FIELDS})  # `key` is encrypted
        NewTOTP.objects.filter(pk=new.pk).update(created_at=old.created_at)  # not the migration's time
    for old in OldStatic.objects.prefetch_related("token_set"):
        device = NewCodes.objects.create(**{field: getattr(old, field) for field in STATIC_FIELDS})
        Code.objects.bulk_create(Code(device=device, code=token.token) for token in old.token_set.all())
    OldStatic.objects.all().delete()  # its tokens cascade
    OldTOTP.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("deliveryhub", "0003_otp_devices_encrypted"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(encrypt_devices, migrations.RunPython.noop)]
