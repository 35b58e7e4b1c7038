"""A sealed bundle served: `rules_key_file` reaches the engine and the reloader."""

from __future__ import annotations

from pathlib import Path

from multidict import CIMultiDict

from intercept.cli import main as cli_main
from intercept.config import load_config
from intercept.core import Answer, Pass
from intercept.reload import Reloader
from intercept.server.serve import build_engine

ROOT = Path(__file__).parents[2]


async def test_serve_decides_and_reloads_from_a_sealed_bundle(tmp_path: Path) -> None:
    key = tmp_path / "bundle.key"
    bundle = tmp_path / "demo.sealed.json"
    assert cli_main(["seal", "--new-key", str(key)]) == 0
    seal = ["seal", str(ROOT / "rules"), "--key-file", str(key), "-o", str(bundle)]
    assert cli_main([*seal, "--skip-unsealable"]) == 0  # the demo has a prefix rule
    config = load_config(
        None,
        environ={},
        overrides={
            "rules": str(bundle),
            "rules_key_file": str(key),
            "messages": str(ROOT / "messages"),
        },
    )
    engine = build_engine(config)
    headers: CIMultiDict[str] = CIMultiDict()
    assert isinstance(engine.decide("GET", "/search?q=bl0cked+ex4mple", headers, None), Answer)
    assert isinstance(engine.decide("GET", "/search?q=garden+chairs", headers, None), Pass)
    before = engine.rules.version
    result = await Reloader(config, engine).reload("test", force=True)
    assert result.ok, result.problems
    assert engine.rules.version == before
    assert isinstance(engine.decide("GET", "/search?q=blocked+example", headers, None), Answer)
