"""Error text helpers: client input quoted safely, pydantic errors flattened for React."""

from gateway.errors import field_errors, safe_text


def test_safe_text_escapes_truncates_and_shows_control_characters() -> None:
    assert safe_text("<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert safe_text("a\nb\x00") == "a\\u000ab\\u0000"
    assert safe_text("x" * 100, limit=10) == "x" * 10 + "…"


def test_field_errors_are_flat_and_escaped() -> None:
    raw = [
        {"loc": ("body", "<i>"), "msg": "Extra inputs are not permitted", "type": "extra_forbidden"},
        {"loc": ("path", "batch_id"), "msg": "String should match pattern", "type": "string_pattern_mismatch"},
        {"loc": ("body", 12), "msg": "JSON decode error", "type": "json_invalid", "ctx": {"error": "Expecting value"}},
    ]
    unknown, pattern, malformed = field_errors(raw)
    assert unknown == {
        "field": "&lt;i&gt;",
        "location": "body",
        "message": "Unknown field; it is not part of this request",
        "type": "extra_forbidden",
    }
    assert (pattern["field"], pattern["location"], pattern["type"]) == ("batch_id", "path", "string_pattern_mismatch")
    assert (malformed["field"], malformed["message"]) == ("body", "Malformed JSON: Expecting value")
