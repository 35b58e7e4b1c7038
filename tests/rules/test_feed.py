"""The signed rule feed's format (`intercept.rules.feed`): keys, publishing, what a replica
verifies, and the `rules_feed` configuration. Files only, no network; about 2 s."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from intercept import load_rules
from intercept.config import ConfigError, load_config
from intercept.errors import RuleError
from intercept.rules import feed
from intercept.rules.feed import FeedError, FeedRefused, Manifest
from intercept.rules.seal import new_key_file, seal_files
from intercept.server.feedpoll import shown_url

RULES = """list: {name: feedtest, source: synthetic, updated: 2026-12-01}
defaults: {category: demo, action: block, language: en}
rules:
  - id: F-1
    terms: ["amber kettle"]
    examples: {match: ["amber kettle"], no_match: ["amber"]}
"""


def _accept(path: Path) -> tuple[str, int]:
    rules = load_rules(path)
    return rules.version, len(rules)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    (folder / "more").mkdir(parents=True)
    (folder / "a.yaml").write_text(RULES, encoding="utf-8")
    (folder / "more" / "b.yml").write_text(RULES.replace("F-1", "F-2").replace("amber", "teal"))
    (folder / "README.md").write_text("not a rule file")
    (folder / ".hidden.yaml").write_text("not read")
    return folder


@pytest.fixture
def key(tmp_path: Path) -> Path:
    feed.keygen(tmp_path / "keys")
    return tmp_path / "keys" / "feed.key"


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_replaces_it(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "keys"
    first = feed.keygen(folder)
    assert stat.S_IMODE((folder / "feed.key").stat().st_mode) == 0o600
    assert (folder / "feed.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert feed.key_id(feed.read_public_key(folder / "feed.pub")) == first
    before = (folder / "feed.key").read_bytes()
    with pytest.raises(FeedError, match="exists already"):
        feed.keygen(folder)
    assert (folder / "feed.key").read_bytes() == before
    assert feed.keygen(folder, force=True) != first
    assert stat.S_IMODE((folder / "feed.key").stat().st_mode) == 0o600
    with pytest.raises(FeedError, match="not a PEM private key"):
        feed.read_private_key(folder / "feed.pub")


def test_a_published_folder_is_its_rule_files_signed_and_versioned(
    tmp_path: Path, rules: Path, key: Path
) -> None:
    out = tmp_path / "out"
    manifest = feed.publish(rules, key, out, _accept, now=1_800_000_000)
    assert manifest.version == 1_800_000_000
    assert manifest.kind == "folder"
    assert manifest.rules == 2
    assert manifest.payload == "rules-1800000000.tar.gz"
    public = feed.read_public_key(key.parent / "feed.pub")
    body = (out / feed.MANIFEST).read_bytes()
    assert feed.verify_manifest(body, (out / feed.SIGNATURE).read_bytes(), public) == manifest
    assert (out / feed.MANIFEST).stat().st_mtime == manifest.version  # seen as changed
    data = (out / manifest.payload).read_bytes()
    feed.check_payload(manifest, data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = archive.getmembers()
    assert sorted(m.name for m in members) == ["a.yaml", "more/b.yml"]  # rule files only
    assert all(m.isfile() and m.mode == 0o644 and m.mtime == manifest.version for m in members)
    target = tmp_path / "replica"
    assert feed.unpack(manifest, data, target) == target
    assert load_rules(target).version == manifest.rule_set


def test_every_publish_raises_the_version_and_only_the_last_payloads_stay(
    tmp_path: Path, rules: Path, key: Path
) -> None:
    out = tmp_path / "out"
    versions = [feed.publish(rules, key, out, _accept, now=1_800_000_000).version
                for _ in range(5)]  # fmt: skip
    assert versions == list(range(1_800_000_000, 1_800_000_005))  # the same second, each +1
    later = feed.publish(rules, key, out, _accept, now=1_900_000_000).version
    assert later == 1_900_000_000
    payloads = sorted(p.name for p in out.iterdir() if p.name.startswith("rules-"))
    assert payloads == ["rules-1800000003.tar.gz", "rules-1800000004.tar.gz",
                        "rules-1900000000.tar.gz"]  # fmt: skip
    assert feed.publish(rules, key, out, _accept, now=1).version == 1_900_000_001  # clock back


def test_a_set_that_fails_validation_is_not_published(
    tmp_path: Path, rules: Path, key: Path
) -> None:
    (rules / "a.yaml").write_text(
        RULES.replace('no_match: ["amber"]', 'no_match: ["amber kettle"]')
    )
    out = tmp_path / "out"
    with pytest.raises(RuleError):
        feed.publish(rules, key, out, lambda path: _checked(path))
    assert not out.exists()


def _checked(path: Path) -> tuple[str, int]:
    from intercept.config import Config
    from intercept.reload import load_checked

    loaded, _ = load_checked(Config(rules=path))
    return loaded.version, len(loaded)


def test_a_sealed_bundle_is_published_as_it_is(tmp_path: Path, rules: Path, key: Path) -> None:
    bundle_key = tmp_path / "bundle.key"
    new_key_file(bundle_key)
    bundle = tmp_path / "rules.bundle.json"
    seal_files([rules], bundle_key, bundle)

    def accept(path: Path) -> tuple[str, int]:
        sealed = load_rules(path, key_file=bundle_key)
        return sealed.version, len(sealed)

    manifest = feed.publish(bundle, key, tmp_path / "out", accept)
    assert manifest.kind == "bundle"
    assert manifest.payload.endswith(".bundle")
    data = (tmp_path / "out" / manifest.payload).read_bytes()
    assert data == bundle.read_bytes()
    loaded = feed.unpack(manifest, data, tmp_path / "replica")
    assert load_rules(loaded, key_file=bundle_key).version == manifest.rule_set


def _published(tmp_path: Path, rules: Path, key: Path) -> tuple[bytes, bytes, Manifest]:
    out = tmp_path / "out"
    manifest = feed.publish(rules, key, out, _accept)
    return (out / feed.MANIFEST).read_bytes(), (out / feed.SIGNATURE).read_bytes(), manifest


def test_a_manifest_changed_or_signed_by_another_key_is_refused(
    tmp_path: Path, rules: Path, key: Path
) -> None:
    body, signature, manifest = _published(tmp_path, rules, key)
    public = feed.read_public_key(key.parent / "feed.pub")
    changed = body.replace(b'"rules": 2', b'"rules": 3')
    assert changed != body
    cases = [
        (changed, signature),
        (body, base64.b64encode(b"\0" * 64)),
        (body, b"not base64 at all!"),
        (body, b""),
    ]
    for data, sig in cases:
        with pytest.raises(FeedRefused) as refused:
            feed.verify_manifest(data, sig, public)
        assert refused.value.reason == "signature"
    with pytest.raises(FeedRefused, match=r"a wrong rules_feed\.url"):
        feed.verify_manifest(b"<html>Not found</html>", b"", public)
    other = feed.keygen(tmp_path / "other")
    with pytest.raises(FeedRefused, match=f"key {other}; the manifest names key {manifest.key_id}"):
        feed.verify_manifest(body, signature, feed.read_public_key(tmp_path / "other/feed.pub"))


def test_a_payload_cut_short_or_changed_is_refused(tmp_path: Path, rules: Path, key: Path) -> None:
    _, _, manifest = _published(tmp_path, rules, key)
    data = (tmp_path / "out" / manifest.payload).read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    for damaged in (data[:-1], bytes(flipped), data + b"\0"):
        with pytest.raises(FeedRefused) as refused:
            feed.check_payload(manifest, damaged)
        assert refused.value.reason == "download"
        assert refused.value.version == manifest.version


def _archive(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x"
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data) if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    return info, data


@pytest.mark.parametrize(
    "member",
    [
        _member("../escape.yaml"),
        _member("/etc/escape.yaml"),
        _member("inner/../../escape.yaml"),
        _member("link.yaml", tarfile.SYMTYPE),
        _member("hard.yaml", tarfile.LNKTYPE),
        _member("device", tarfile.CHRTYPE),
        _member("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "inner-dotdot", "symlink", "hardlink", "device", "fifo"],
)
def test_an_archive_with_anything_but_plain_files_is_refused_whole(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes]
) -> None:
    data = _archive(_member("good.yaml", data=RULES.encode()), member)
    manifest = Manifest(1, "2026-12-01T00:00:00Z", "folder", "rules-1.tar.gz", len(data),
                        "0" * 64, "0" * 16, "x", 1)  # fmt: skip
    with pytest.raises(FeedRefused) as refused:
        feed.unpack(manifest, data, tmp_path / "replica")
    assert refused.value.reason == "invalid"
    assert not (tmp_path / "escape.yaml").exists()
    assert not (tmp_path.parent / "escape.yaml").exists()


def test_a_signed_manifest_that_is_not_one_is_invalid(tmp_path: Path, key: Path) -> None:
    private = feed.read_private_key(key)
    public = private.public_key()
    fields = {"format": feed.FORMAT, "version": 5, "created": "x", "kind": "folder",
              "payload": "rules-6.tar.gz", "size": 1, "sha256": "0" * 64, "key_id": "0" * 16,
              "rule_set": "x", "rules": 1}  # fmt: skip
    for broken in ({**fields}, {**fields, "payload": "../../etc/passwd"},
                   {**fields, "format": "other/1"}, {**fields, "extra": 1}):  # fmt: skip
        body = json.dumps(broken).encode()
        with pytest.raises(FeedRefused) as refused:
            feed.verify_manifest(body, base64.b64encode(private.sign(body)), public)
        assert refused.value.reason == "invalid"
    good = json.dumps({**fields, "payload": "rules-5.tar.gz"}).encode()
    assert feed.verify_manifest(good, base64.b64encode(private.sign(good)), public).version == 5


# --- configuration ------------------------------------------------------------------------------


def _config(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ=environ or {})


def test_rules_feed_replaces_rules(tmp_path: Path, key: Path) -> None:
    public = key.parent / "feed.pub"
    section = f"rules_feed: {{url: 'https://rules.example/feed/', public_key_file: {public}}}\n"
    config = _config(tmp_path, section)
    assert config.rules == Path("intercept-feed/current")  # type: ignore[attr-defined]
    config = _config(tmp_path, section.replace("}", ", cache_dir: /var/cache/f}"))
    assert config.rules == Path("/var/cache/f/current")  # type: ignore[attr-defined]
    for text, environ in [("rules: rules\n" + section, {}), (section, {"INTERCEPT_RULES": "r"})]:
        with pytest.raises(ConfigError, match="rules and rules_feed are both set"):
            _config(tmp_path, text, environ)
    environ = {"INTERCEPT_RULES_FEED__POLL_SECONDS": "5"}
    assert _config(tmp_path, section, environ).rules_feed.poll_seconds == 5  # type: ignore[attr-defined]


def test_a_rules_feed_mistake_is_named(tmp_path: Path, key: Path) -> None:
    public = key.parent / "feed.pub"
    cases = [
        (f"{{url: 'https://h/f/', public_key_file: {public}, pol_seconds: 5}}",
         "rules_feed.pol_seconds: unknown key (did you mean 'poll_seconds'?)"),
        (f"{{url: 'ftp://user:hunter2secret@h/f/', public_key_file: {public}}}",
         "rules_feed.url: must be an http:// or https:// address (got 'ftp://user:***@h/f/')"),
        (f"{{url: 'https://h/f/', public_key_file: {tmp_path / 'none.pub'}}}",
         "public_key_file cannot be read (No such file or directory)"),
        (f"{{url: 'https://h/f/', public_key_file: {key}}}", "is not a PEM public key"),
        ("{url: 'https://h/f/'}", "rules_feed.public_key_file: Field required"),
    ]  # fmt: skip
    for section, message in cases:
        with pytest.raises(ConfigError) as error:
            _config(tmp_path, f"rules_feed: {section}\n")
        assert message in str(error.value)
        assert "hunter2secret" not in str(error.value)


def test_the_feed_address_is_shown_without_credentials() -> None:
    assert shown_url("https://user:pw@rules.example:8443/feed/?sig=abc#x") == (
        "https://***@rules.example:8443/feed/?***"
    )
    assert shown_url("http://[::1]:8000/f/") == "http://[::1]:8000/f/"
    assert shown_url("https://token@h/f/") == "https://***@h/f/"


def test_the_private_key_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    """The private key stays 0600 whatever the umask."""
    old = os.umask(0)
    try:
        feed.keygen(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k" / "feed.key").stat().st_mode) == 0o600
