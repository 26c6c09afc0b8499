"""The README documents what the code reads: every setting's env var and every CLI subcommand."""

from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from conductor.cli import build_parser
from gateway.settings import GatewaySettings
from streams.settings import WorkerSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _env_names(settings: type[BaseSettings]) -> list[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = []
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.append(next(str(c) for c in alias.choices if str(c).isupper()))
        else:
            names.append(f"{prefix}{name}".upper())
    return names


def test_every_env_var_is_documented() -> None:
    missing = [n for n in _env_names(WorkerSettings) + _env_names(GatewaySettings) if f"`{n}`" not in README]
    assert not missing, f"README lacks: {missing}"


def test_every_subcommand_is_documented() -> None:
    actions = [a for a in build_parser()._actions if a.dest == "command"]
    for name in actions[0].choices:  # type: ignore[union-attr]
        assert f"conductor {name}" in README


def test_readme_starts_with_the_two_commands() -> None:
    head = README[:600]
    assert "make run" in head and "make test" in head
