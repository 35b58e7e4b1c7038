"""Configuration: file, environment and flags, in that order; errors name key and value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from intercept.config import DEFAULT_CONFIG_YAML, Config, ConfigError, load_config

ROOT = Path(__file__).parent.parent


def test_defaults() -> None:
    config = load_config(None, environ={})
    assert config.listen == "127.0.0.1:8080"
    assert config.mode == "proxy"
    assert config.access_log is False
    assert [r.name for r in config.routes] == [
        "search", "autocomplete", "autocompleter", "suggest", "complete"
    ]  # fmt: skip


def test_commented_default_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "intercept.yaml"
    path.write_text(DEFAULT_CONFIG_YAML, encoding="utf-8")
    assert load_config(path, environ={}) == Config()
    assert yaml.safe_load(DEFAULT_CONFIG_YAML)["limits"]["body"] == Config().limits.body


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "intercept.yaml"
    path.write_text("listen: 127.0.0.1:7000\ntimeouts: {connect: 3}\n", encoding="utf-8")
    env = {"INTERCEPT_LISTEN": "127.0.0.1:7001", "INTERCEPT_TIMEOUTS__HEADER": "9"}
    config = load_config(path, environ=env)
    assert (config.listen, config.timeouts.connect, config.timeouts.header) == (
        "127.0.0.1:7001", 3, 9
    )  # fmt: skip
    config = load_config(path, environ=env, overrides={"listen": "127.0.0.1:7002"})
    assert config.listen == "127.0.0.1:7002"
    assert load_config(None, environ={"INTERCEPT_CONFIG": str(path)}).listen == "127.0.0.1:7000"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen: nowhere\n", "listen: must be HOST:PORT, e.g. 127.0.0.1:8080 (got 'nowhere')"),
        ("upstream: ftp://x\n", "upstream: must be an http:// or https:// address without a path"),
        ("timeouts: {connect: -1}\n", "timeouts.connect: Input should be greater than 0 (got -1)"),
        ("mode: sideways\n", "mode: Input should be 'proxy' or 'authz' (got 'sideways')"),
        ("colour: blue\n", "colour: unknown key"),
        ("timeouts: {conect: 3}\n", "timeouts.conect: unknown key (did you mean 'connect'?)"),
        ("routes: [{name: s}]\n", "set exactly one of 'path' or 'path_regex'"),
        ("routes: [{name: s, path_regex: '('}]\n", "not a valid regular expression"),
        ("- a list\n", "expected a mapping of settings"),
        ("listen: [\n", "not valid YAML"),
    ],
)
def test_errors_name_key_and_value(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert message in str(error.value)
    assert str(path) in str(error.value)


SECRET = "a-canary-secret-of-length"


@pytest.mark.parametrize(
    "text",
    [
        f"warn: {{secert: {SECRET}}}\n",  # a misspelt secret key: its value is no less secret
        f"colour: {SECRET}\n",
        f"warn: {SECRET}\n",  # a section given a value
        f"admin: {{reload_token: {SECRET[:8]}}}\n",  # too short, still a secret
        f"ledger: {{url: 'mysql://u:{SECRET}@db/x'}}\n",  # a URL's password
        f"ledger: {{ur1: 'postgresql://u:{SECRET}@db/x'}}\n",
    ],
)
def test_file_errors_never_repeat_a_secret(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert SECRET[:8] not in str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "warn: secret_file must hold at least 16 characters: {path}"),
        ("short\n", "warn: secret_file must hold at least 16 characters: {path}"),
        (None, "warn: secret_file cannot be read (No such file or directory): {path}"),
    ],
)
def test_a_warn_secret_file_must_hold_a_secret(
    tmp_path: Path, content: str | None, message: str
) -> None:
    """An empty key would let anyone sign continue tokens: refused, naming the setting."""
    path = tmp_path / "warn.secret"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(None, environ={"INTERCEPT_WARN__SECRET_FILE": str(path)})
    assert message.format(path=path) in str(error.value)


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"block_status: Input should be a valid integer"):
        load_config(None, environ={"INTERCEPT_BLOCK_STATUS": "lots"})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config("/nonexistent/intercept.yaml", environ={})


def test_environment_text_values_are_taken_as_written() -> None:
    env = {
        "INTERCEPT_WARN__SECRET": "4839201746352819",  # digits only: still a string
        "INTERCEPT_ADMIN__RELOAD_TOKEN": "s3cr3t-part-one #part-two",  # not a YAML comment
        "INTERCEPT_LEDGER__URL": "null",  # null still turns an optional text off
        "INTERCEPT_WORKERS": "2",  # other fields are still read as YAML
        "INTERCEPT_RELOAD__WATCH": "false",
    }
    config = load_config(None, environ=env)
    assert config.warn.secret == "4839201746352819"
    assert config.admin.reload_token == "s3cr3t-part-one #part-two"
    assert config.ledger.url is None
    assert config.workers == 2
    assert config.reload.watch is False


def test_errors_never_repeat_a_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"INTERCEPT_WARN__SECRET": "shortsecretx"})
    assert "warn.secret" in str(caught.value)
    assert "shortsecretx" not in str(caught.value)


@pytest.mark.parametrize("key", ["listen", "admin_listen"])
def test_a_port_out_of_range_is_refused_by_name(key: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"{key}: the port must be 0 to 65535 \(got '127.0.0.1:99999'\)"
    ):
        load_config(None, environ={}, overrides={key: "127.0.0.1:99999"})
    assert (
        getattr(load_config(None, environ={}, overrides={key: "[::1]:65535"}), key) == "[::1]:65535"
    )


def test_an_error_names_every_source_it_came_from(tmp_path: Path) -> None:
    path = tmp_path / "intercept.yaml"
    path.write_text("mode: proxy\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\(defaults \+ command line\)"):
        load_config(None, environ={}, overrides={"listen": "nonsense"})
    environ = {"INTERCEPT_WORKERS": "2"}
    with pytest.raises(ConfigError, match=rf"\({path} \+ environment \+ command line\)"):
        load_config(path, environ=environ, overrides={"listen": "nonsense"})


def test_a_misspelt_environment_setting_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    environ = {
        "INTERCEPT_LISTNE": "127.0.0.1:1",  # a typo: the default would silently stay
        "INTERCEPT_WORKER": "1",  # Intercept's own worker mark
        "INTERCEPT_TIMEOUT_MS": "500",  # the HAProxy Lua script's
        "INTERCEPT_SOMETHING_ELSE": "x",  # nothing like a setting
    }
    with caplog.at_level("WARNING", logger="intercept"):
        config = load_config(None, environ=environ)
    assert config.listen == "127.0.0.1:8080"
    assert [r.getMessage() for r in caplog.records] == [
        "INTERCEPT_LISTNE is not a setting and is ignored; did you mean INTERCEPT_LISTEN?"
    ]


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("INTERCEPT_WARN_SECRET", "INTERCEPT_WARN__SECRET"),
        ("INTERCEPT_LEDGER_URL", "INTERCEPT_LEDGER__URL"),
        ("INTERCEPT_ADMIN_RELOAD_TOKEN", "INTERCEPT_ADMIN__RELOAD_TOKEN"),
        ("INTERCEPT_ADMIN_RELOAD_TOKEN_FILE", "INTERCEPT_ADMIN__RELOAD_TOKEN_FILE"),
        ("INTERCEPT_TIMEOUTS_CONNECT", "INTERCEPT_TIMEOUTS__CONNECT"),
    ],
)
def test_a_nested_setting_with_one_underscore_is_warned_about(
    caplog: pytest.LogCaptureFixture, name: str, meant: str
) -> None:
    with caplog.at_level("WARNING", logger="intercept"):
        load_config(None, environ={name: "a-value-of-sixteen-chars"})
    assert [r.getMessage() for r in caplog.records] == [
        f"{name} is not a setting and is ignored; did you mean {meant}?"
    ]


def test_the_control_variant_must_be_one_of_the_variants_when_set() -> None:
    """`variants.control` names what the report compares with: set to a variant that is not
    among the weights it is refused by name; left at its default (`neutral`), weights without
    a neutral variant stay valid (the report then says the control showed no page)."""
    with pytest.raises(ConfigError, match=r"variants: .*control: 'calm' is not one of the"):
        load_config(None, environ={}, overrides={"variants": {"control": "calm"}})
    weights = {"harm": 1.0, "help": 2.0}
    config = load_config(None, environ={}, overrides={"variants": {"weights": weights}})
    assert (config.variants.control, config.variants.weights) == ("neutral", weights)
    chosen = {"variants": {"weights": weights, "control": "help"}}
    assert load_config(None, environ={}, overrides=chosen).variants.control == "help"


def test_the_shipped_example_questionnaire_is_a_valid_survey() -> None:
    """`messages/examples/survey.yaml` is what an operator copies into intercept.yaml."""
    example = ROOT / "messages" / "examples" / "survey.yaml"
    survey = yaml.safe_load(example.read_text(encoding="utf-8"))["survey"]
    config = load_config(None, environ={}, overrides={"survey": survey})
    assert [q.id for q in config.survey.questions] == ["why", "help"]
    assert all(len(q.options) >= 2 for q in config.survey.questions)
    assert "EXAMPLE ONLY" in example.read_text(encoding="utf-8")


def test_no_variant_may_be_called_none() -> None:
    """`none` marks counts with no page shown (autocomplete answers, shadow hits): a variant
    of that name would vanish from every figure about pages."""
    with pytest.raises(ConfigError, match="'none' is reserved"):
        load_config(None, environ={}, overrides={"variants": {"weights": {"none": 1.0}}})


def test_warn_secrets_rotate(tmp_path: Path) -> None:
    """Several secrets: the first signs, all verify; a secret file holds one, as before."""
    pair = ["a-new-secret-of-enough-length", "an-old-secret-of-enough-length"]
    config = load_config(None, environ={}, overrides={"warn": {"secret": pair}})
    assert config.warn.secrets() == tuple(pair)
    single = load_config(None, environ={}, overrides={"warn": {"secret": pair[0]}})
    assert single.warn.secrets() == (pair[0],)
    secret_file = tmp_path / "warn.secret"
    secret_file.write_text(pair[0] + "\n")
    from_file = load_config(None, environ={}, overrides={"warn": {"secret_file": secret_file}})
    assert from_file.warn.secrets() == (pair[0],)
    for bad, said in (([], "an empty list"), ([pair[0], "short"], "at least 16")):
        with pytest.raises(ConfigError, match=said):
            load_config(None, environ={}, overrides={"warn": {"secret": bad}})
