import dataclasses

import pytest

from eventpipe.config import apply_overrides, from_dict
from eventpipe.errors import ConfigError


@dataclasses.dataclass
class Window:
    window_us: int = 10_000
    stride_us: int | None = None
    mode: str = "counts"


@dataclasses.dataclass
class Cfg:
    window: Window = dataclasses.field(default_factory=Window)
    size: tuple[int, int] = (128, 128)
    ema: float = 0.5
    sinks: list[str] = dataclasses.field(default_factory=list)


def test_builds_nested_and_coerces():
    c = from_dict(Cfg, {"window": {"window_us": 5000}, "size": [64, 48], "ema": 1})
    assert c.window.window_us == 5000 and c.window.stride_us is None
    assert c.size == (64, 48) and c.ema == 1.0 and isinstance(c.ema, float)


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'window.windw_us'.*did you mean 'window_us'"):
        from_dict(Cfg, {"window": {"windw_us": 5}})


@pytest.mark.parametrize("data,msg", [
    ({"window": {"window_us": "10ms"}}, "window.window_us: expected an integer"),
    ({"window": {"window_us": True}}, "window.window_us: expected an integer"),
    ({"size": [1, 2, 3]}, "size: expected 2 items"),
    ({"ema": "high"}, "ema: expected a number"),
    ({"window": 3}, "window: expected a table"),
])
def test_wrong_types_name_the_key(data, msg):
    with pytest.raises(ConfigError, match=msg):
        from_dict(Cfg, data)


def test_overrides_parse_toml_scalars():
    d = apply_overrides({"window": {"window_us": 1}}, ["window.window_us=2500", "ema=0.25",
                                                      "window.mode=binary", "size=[32, 32]"])
    c = from_dict(Cfg, d)
    assert c.window.window_us == 2500 and c.ema == 0.25 and c.window.mode == "binary"
    assert c.size == (32, 32)
    with pytest.raises(ConfigError, match="must look like"):
        apply_overrides({}, ["novalue"])


def test_shipped_run_config_is_valid_and_complete():
    from pathlib import Path

    from eventpipe.runtime.config import RunConfig, load_run_config

    path = Path(__file__).resolve().parents[2] / "configs" / "run_default.toml"
    assert load_run_config(path) == RunConfig()  # the file documents the defaults


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def test_toml_nested_too_deep_is_a_config_error_naming_the_file(tmp_path):
    """tomllib recurses once per nesting level: a config file (or a --set value) nested a few
    thousand levels deep was a RecursionError (exit 1, 'maximum recursion depth exceeded', no
    file named); it is a ConfigError naming the file (the command's exit 4)."""
    from eventpipe.config import load_toml

    p = tmp_path / "deep.toml"
    p.write_text(f"a = {_deep(3000)}\n")
    with pytest.raises(ConfigError, match=r"deep\.toml: invalid TOML: nested too deep"):
        load_toml(p)
    with pytest.raises(ConfigError, match=r"override 'a=\[\[\[.*nested too deep"):
        apply_overrides({}, [f"a={_deep(3000)}"])
    # a nesting tomllib can take is still read
    assert apply_overrides({}, [f"a={_deep(20)}"])["a"] == eval(_deep(20))


def test_run_with_a_config_nested_too_deep_exits_4_with_one_line(tmp_path, capsys):
    from eventpipe.cli import main

    p = tmp_path / "deep.toml"
    p.write_text(f"a = {_deep(3000)}\n")
    assert main(["run", "--config", str(p), "--duration", "1"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "deep.toml: invalid TOML: nested too deep" in err[0]
