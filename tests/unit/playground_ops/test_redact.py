"""Secrets kept out of what an operator reads: URL passwords masked in any scheme and host form, registered values
blanked in log records and in the exceptions they carry."""

import logging

from playground_ops.redact import RedactingFilter, mask_url, redact, register_secret


def test_every_url_form_loses_its_password_and_keeps_the_rest():
    assert mask_url("postgresql://app:pw@[::1]:5432/app?sslmode=require") == "postgresql://app:***@[::1]:5432/app?sslmode=require"
    assert mask_url("https://hooks.example.com/path") == "https://hooks.example.com/path"
    assert mask_url(None) is None
    assert redact("tried amqp://guest:guest-pw@mq/ and redis://:pw@cache/0") == \
        "tried amqp://guest:***@mq/ and redis://:***@cache/0"


def test_a_registered_url_s_password_is_blanked_on_its_own_too():
    register_secret("postgresql://svc:Very-Long-Pw-81@db.internal/app")
    assert redact("auth failed for password Very-Long-Pw-81") == "auth failed for password ***"


def test_short_values_are_not_registered_so_text_is_not_shredded():
    register_secret("abc")
    assert redact("abc def") == "abc def"


def record(msg, *args, exc=None):
    return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, args, (type(exc), exc, None) if exc else None)


def test_log_records_and_their_exceptions_are_cleaned_before_any_handler_sees_them():
    register_secret("jwt-secret-QWERTY-99")
    rec = record("rotated %s", "jwt-secret-QWERTY-99")
    assert RedactingFilter().filter(rec) and rec.getMessage() == "rotated ***"
    rec = record("write failed", exc=RuntimeError("value jwt-secret-QWERTY-99 refused"))
    RedactingFilter().filter(rec)
    assert rec.exc_info is None and rec.getMessage() == "write failed (value *** refused)"
    clean = record("nothing secret")
    RedactingFilter().filter(clean)
    assert clean.getMessage() == "nothing secret"
