"""The `intercept` command line: curator tools for rule files.

Exit status: 0 success, 1 the checked thing failed (errors, failed examples, thresholds not
met), 2 the command was used wrongly or an input could not be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO, TypeVar

from intercept import __version__
from intercept.errors import InterceptError, RuleError

__all__ = ["main"]

_N = TypeVar("_N", int, float)

DEFAULT_RULES = "rules"


def _rules_default() -> str:
    return os.environ.get("INTERCEPT_RULES", DEFAULT_RULES)


KEY_FILE_ENV = "INTERCEPT_RULES_KEY_FILE"  # intercept.rules.seal.KEY_ENV, without importing it


def _key_file_option(parser: argparse.ArgumentParser) -> None:
    """`--key-file K`: the key of a sealed bundle, by default `$INTERCEPT_RULES_KEY_FILE`."""
    parser.add_argument(
        "--key-file",
        type=Path,
        default=os.environ.get(KEY_FILE_ENV) or None,
        metavar="K",
        help=f"key file of a sealed bundle (default: ${KEY_FILE_ENV})",
    )


def _print_problems(title: str, problems: Sequence[object], out: TextIO) -> None:
    if problems:
        print(f"{title} ({len(problems)}):", file=out)
        for problem in problems:
            print(f"  {problem}", file=out)


def cmd_check(args: argparse.Namespace) -> int:
    from intercept.curation.check import check_rules
    from intercept.rules.seal import is_sealed_bundle

    missing = [path for path in args.paths if not path.exists()]
    if missing:  # unreadable input, not a failed check: exit 2, as for wrong usage
        for path in missing:
            print(f"intercept check: {path}: no such file or folder", file=sys.stderr)
        return 2
    bundles = [path for path in args.paths if is_sealed_bundle(path)]
    if bundles:
        return _check_with_bundles(args, bundles)
    report = check_rules(args.paths)
    _print_problems("errors", report.errors, sys.stdout)
    _print_problems("warnings", report.warnings, sys.stdout)
    if not report.ok:
        print(f"FAILED: {len(report.errors)} error(s)")
        return 1
    if args.strict and report.warnings:
        print(f"FAILED: {len(report.warnings)} warning(s) with --strict")
        return 1
    print(
        f"OK: {report.rules} rules in {report.files} file(s), {report.examples} examples pass, "
        f"{len(report.warnings)} warning(s)"
    )
    return 0


def _check_with_bundles(args: argparse.Namespace, bundles: list[Path]) -> int:
    """`check` when some paths are sealed bundles: each is loaded with `--key-file` (format,
    key, MAC, structure; its examples were left out when sealing, so none run); the other
    paths are checked as usual."""
    from intercept.curation.check import check_rules
    from intercept.errors import Problem
    from intercept.rules.seal import check_bundle

    errors: list[Problem] = []
    warnings: list[Problem] = []
    done: list[str] = []
    for path in bundles:
        try:
            sealed = check_bundle(path, args.key_file)
        except RuleError as error:
            errors.extend(error.problems)
            continue
        done.append(
            f"OK: sealed bundle {path}: {len(sealed)} rules, version {sealed.version}, sealed "
            "with this key (a bundle holds no examples: check the rules it was sealed from)"
        )
    others = [path for path in args.paths if path not in bundles]
    if others:
        report = check_rules(others)
        errors.extend(report.errors)
        warnings.extend(report.warnings)
        done.append(
            f"OK: {report.rules} rules in {report.files} file(s), {report.examples} examples "
            f"pass, {len(report.warnings)} warning(s)"
        )
    _print_problems("errors", errors, sys.stdout)
    _print_problems("warnings", warnings, sys.stdout)
    if errors:
        print(f"FAILED: {len(errors)} error(s)")
        return 1
    if args.strict and warnings:
        print(f"FAILED: {len(warnings)} warning(s) with --strict")
        return 1
    for line in done:
        print(line)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from intercept import load_rules

    rules = load_rules(args.rules, key_file=args.key_file)
    report = rules.explain(args.query)
    if args.json:
        print(
            json.dumps(
                {
                    "stages": [{"stage": n, "text": t} for n, t in report.normalized.stages()],
                    "hits": [
                        {
                            "rule_id": h.rule_id,
                            "role": h.role,
                            "phrase": h.phrase,
                            "reading": h.reading + 1,
                            "span": [h.start, h.end],
                            "text": h.text,
                        }
                        for h in report.hits
                    ],
                    "matched": [m.rule_id for m in report.matched],
                    "suppressed": list(report.suppressed),
                    "decision": None
                    if report.decision is None
                    else {
                        "rule_id": report.decision.rule_id,
                        "category": report.decision.category,
                        "action": report.decision.action.value,
                        "language": report.decision.language,
                    },
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    print("stages:")
    width = max(len(name) for name, _ in report.normalized.stages())
    for name, text in report.normalized.stages():
        print(f"  {name:<{width}}  {text!r}")
    print("hits:" if report.hits else "hits: none")
    multi = len(report.normalized.alternatives) > 1
    for hit in report.hits:
        reading = f" of words #{hit.reading + 1}" if multi else ""
        print(
            f"  {hit.rule_id}  {hit.role} {hit.phrase!r}  at {hit.start}-{hit.end}{reading}: "
            f"{hit.text!r}"
        )
    for rule_id in report.suppressed:
        print(f"suppressed by unless: {rule_id}")
    if report.decision is None:
        print("decision: pass (no rule matches)")
    else:
        d = report.decision
        others = [m.rule_id for m in report.matched[1:]]
        also = f"; also matched: {', '.join(others)}" if others else ""
        print(
            f"decision: {d.action.value} by {d.rule_id} "
            f"(category {d.category}, language {d.language}){also}"
        )
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from intercept import load_rules
    from intercept.curation.corpus import evaluate, read_corpus

    rules = load_rules(args.rules, key_file=args.key_file)
    result = evaluate(rules, read_corpus(args.corpus), name=str(args.corpus))
    passed = (
        result.overall.precision >= args.min_precision and result.overall.recall >= args.min_recall
    )
    if args.json:
        print(json.dumps({**result.as_dict(), "passed": passed}, ensure_ascii=False, indent=2))
        return 0 if passed else 1
    o = result.overall
    print(
        f"{result.rows} queries: precision {o.precision:.4f}, recall {o.recall:.4f} "
        f"(TP {o.true_positives}, FP {o.false_positives}, FN {o.false_negatives}, "
        f"TN {o.true_negatives})"
    )
    if result.by_category:
        print("by category:")
        for name, s in sorted(result.by_category.items()):
            print(
                f"  {name:<20} precision {s.precision:.4f}  recall {s.recall:.4f}  "
                f"(TP {s.true_positives}, FP {s.false_positives}, FN {s.false_negatives})"
            )
    if result.failures:
        print(f"failures ({len(result.failures)}):")
        for f in result.failures:
            got = ", ".join(f.got) or "no match"
            want = f.expected or "no match"
            print(f"  {args.corpus}:{f.line}: {f.query!r}: expected {want}, got {got}")
    verdict = "PASS" if passed else "FAIL"
    print(f"{verdict} (thresholds: precision >= {args.min_precision}, recall >= {args.min_recall})")
    return 0 if passed else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from intercept.curation.rulebench import run_bench

    result = run_bench(args.rules, args.queries, args.match_share)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(f"machine:            {result.machine}")
    print(f"rules:              {result.rules:,}")
    print(f"compile:            {result.compile_seconds:.2f} s")
    print(f"resident memory:    {result.rss_mb:.0f} MB (whole process, after compiling)")
    print(
        f"queries:            {result.queries:,} (<= 64 chars, {result.match_share:.0%} "
        f"with a disguised rule phrase; {result.matched:,} matched)"
    )
    print(f"throughput:         {result.queries_per_second:,} queries/s on one core")
    print(
        f"latency:            p50 {result.p50_us:.1f} us, p99 {result.p99_us:.1f} us, "
        f"p99.9 {result.p999_us:.1f} us"
    )
    return 0


def cmd_seal(args: argparse.Namespace) -> int:
    """Write a sealed bundle, or with --new-key a key file. Exit 1 when rules cannot be
    sealed (named on standard error), 2 for wrong usage or unreadable input."""
    from intercept.rules.seal import Unsealable, new_key_file, seal_files

    if args.new_key is not None:
        if args.paths or args.output is not None:
            print("intercept seal: --new-key takes no PATH and no -o", file=sys.stderr)
            return 2
        fingerprint = new_key_file(args.new_key)
        print(f"wrote key file {args.new_key} (mode 0600), fingerprint {fingerprint}")
        print("keep it apart from the bundles it seals: with both, a guessed phrase is confirmed")
        return 0
    needed = (("PATH", args.paths), ("--key-file", args.key_file), ("-o", args.output))
    missing = [name for name, value in needed if not value]
    if missing:
        print(
            f"intercept seal: needs {', '.join(missing)} (or --new-key FILE to make a key)",
            file=sys.stderr,
        )
        return 2
    try:
        report = seal_files(
            args.paths, args.key_file, args.output, skip_unsealable=args.skip_unsealable
        )
    except Unsealable as error:
        _print_problems("cannot seal", error.problems, sys.stderr)
        print(
            "nothing written; --skip-unsealable leaves them out (then they match nowhere the "
            "bundle is deployed)",
            file=sys.stderr,
        )
        return 1
    if Path(args.key_file).stat().st_mode & 0o004:
        print(f"warning: key file {args.key_file} is readable by every user", file=sys.stderr)
    result = report.result
    print(
        f"sealed {len(result.rules)} rules from {report.files} file(s) into {report.output}: "
        f"{result.keys} keys, {result.prefixes} prefixes, key fingerprint {result.fingerprint}"
    )
    left_out = [f"{s.where}: rule {s.id}: {why}" for s, why in result.unsealable]
    left_out += [
        f"{s.where}: rule {s.id}: " + ("disabled" if s.status != "active" else "expired")
        for s in result.inactive
    ]
    _print_problems("left out", left_out, sys.stdout)
    print(f"verified: the bundle decides like the rules on {report.compared} example queries")
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    """`feed keygen DIR`: a feed signing key pair. `feed publish RULES --key K -o OUT`: the
    rules, validated, as a signed feed version in OUT (`intercept.rules.feed`). Exit 1 when
    the rule set is refused (nothing is published), 2 for wrong usage or unreadable input."""
    from intercept.rules import feed

    if args.feed_command == "keygen":
        key_id = feed.keygen(args.folder, force=args.force)
        private, public = args.folder / feed.PRIVATE_KEY, args.folder / feed.PUBLIC_KEY
        print(f"wrote {private} (mode 0600: the publisher's alone) and {public} (for "
              f"rules_feed.public_key_file), key {key_id}")  # fmt: skip
        return 0

    def validate(path: Path) -> tuple[str, int]:
        from intercept.config import Config
        from intercept.reload import load_checked

        rules, _ = load_checked(Config(rules=path, rules_key_file=args.rules_key_file))
        return rules.version, len(rules)

    try:
        manifest = feed.publish(args.rules, args.key, args.output, validate)
    except RuleError as error:
        print(f"intercept feed publish: {args.rules} refused, nothing published:", file=sys.stderr)
        print(error, file=sys.stderr)
        return 1
    print(
        f"published version {manifest.version} to {args.output}: {feed.MANIFEST}, "
        f"{feed.SIGNATURE}, {manifest.payload} ({manifest.kind}, {manifest.size} bytes); "
        f"rule set {manifest.rule_set}, {manifest.rules} rules, key {manifest.key_id}"
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from intercept.rules.ruleschema import rules_json_schema

    print(json.dumps(rules_json_schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """Rules added, removed and changed from OLD to NEW; with --corpus, every query whose
    decision changes. Exit 1 when --fail-on finds what it names, 2 for unusable input."""
    from intercept import load_rules
    from intercept.curation.diff import (
        diff_rules,
        diff_to_dict,
        failed,
        read_queries,
        render_text,
        with_corpus,
    )

    if args.fail_on is not None and args.corpus is None:
        print("intercept diff: --fail-on needs --corpus", file=sys.stderr)
        return 2
    sides = []
    for side, path in (("OLD", args.old), ("NEW", args.new)):
        try:
            sides.append(load_rules(path))
        except RuleError as error:
            print(f"intercept diff: {side} ({path}): {error}", file=sys.stderr)
            return 2
    diff = diff_rules(*sides, old_path=str(args.old), new_path=str(args.new))
    if args.corpus is not None:
        diff = with_corpus(diff, str(args.corpus), read_queries(args.corpus))
    if args.json:
        report = diff_to_dict(diff, show_terms=args.show_terms, fail_on=args.fail_on)
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(render_text(diff, show_terms=args.show_terms, fail_on=args.fail_on))
    return 1 if failed(diff, args.fail_on) else 0


def cmd_import(args: argparse.Namespace) -> int:
    """Write a rules YAML from a list of terms; the report goes to standard error."""
    from intercept.curation.importer import DEFAULT_WORDLIST, import_terms
    from intercept.rules.rulespec import Action, MatchMode

    if args.output is not None and args.output.resolve() == args.file.resolve():
        print("intercept import: -o would overwrite the input file", file=sys.stderr)
        return 2
    wordlist = args.wordlist
    if wordlist is None and DEFAULT_WORDLIST.is_file():
        wordlist = DEFAULT_WORDLIST
    result = import_terms(
        args.file,
        category=args.category,
        language=args.language,
        id_prefix=args.id_prefix,
        fmt=args.format,
        column=args.column,
        action=Action(args.action),
        match=MatchMode(args.match),
        wordlist=wordlist,
        max_dictionary_hits=args.max_dictionary_hits,
    )
    for line in result.report_lines():
        print(line, file=sys.stderr)
    if args.output is None:
        sys.stdout.write(result.yaml)
    else:
        args.output.write_text(result.yaml, encoding="utf-8")
        print(
            f"wrote {args.output}: {result.written} rule(s), action {args.action}", file=sys.stderr
        )
    return 0


def _import_option(kind: str) -> Callable[[str], str]:
    """An argparse type for `intercept import --category/--language/--id-prefix`."""

    def check(text: str) -> str:
        from intercept.curation.importer import check_label  # only when the option is given

        try:
            return check_label(kind, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return check


def _server_log() -> None:
    """The server's own messages (start, huge pages, reloads, warnings) on stderr, one line
    each; they never hold request data (tests/test_privacy_canary.py)."""
    import logging

    log = logging.getLogger("intercept")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def cmd_serve(args: argparse.Namespace) -> int:
    from intercept.config import load_config

    _server_log()
    config = load_config(
        args.config,
        overrides={
            "listen": args.listen,
            "upstream": args.upstream,
            "rules": args.rules,
            "messages": args.messages,
            "admin_listen": args.admin_listen,
            "mode": args.mode,
            "workers": args.workers,
            "rules_key_file": args.rules_key_file,
        },
    )
    if config.workers is not None:
        _multiprocess_metrics()
    from intercept.server.serve import run  # after: it imports the metrics library

    def ready(_: object) -> None:
        if config.mode == "authz":
            print(f"intercept: decision service on http://{config.listen}/", flush=True)
        else:
            print(f"intercept: serving on http://{config.listen}/ -> {config.upstream}", flush=True)

    run(config, ready)
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask a running `intercept serve` to reload its rules and messages now."""
    import urllib.error
    import urllib.request

    from intercept.config import load_config

    config = load_config(args.config, overrides={"admin_listen": args.admin_listen})
    token = config.admin.token()
    if token is None:
        print(
            "intercept reload: no admin.reload_token or admin.reload_token_file is configured "
            "(the server's POST /admin/reload is off without one)",
            file=sys.stderr,
        )
        return 2
    url = f"http://{config.admin_listen}/admin/reload"
    request = urllib.request.Request(
        url, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            result = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code != 422:
            print(f"intercept reload: {url} answered {error.code}", file=sys.stderr)
            return 2
        result = json.loads(error.read())
    except (urllib.error.URLError, OSError) as error:
        print(f"intercept reload: cannot reach {url}: {error}", file=sys.stderr)
        return 2
    if result.get("ok"):
        print(f"reloaded: rule set {result['version']}, {result['rules']} rules")
        return 0
    print(f"refused; still serving rule set {result['version']}:", file=sys.stderr)
    for problem in result.get("problems", []):
        print(f"  {problem}", file=sys.stderr)
    return 1


def _multiprocess_metrics() -> None:
    """Workers sum their metrics through files in `PROMETHEUS_MULTIPROC_DIR`: a fresh folder
    unless the operator named one (whose old files are removed: they would be summed too).
    This must happen before the metrics library is first imported."""
    import atexit
    import shutil
    import tempfile

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder is None:
        folder = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="intercept-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # ours: gone at exit
    for stale in Path(folder).glob("*.db"):
        stale.unlink()
    shutil.rmtree(Path(folder, "answers"), ignore_errors=True)  # nonces of an earlier run


def cmd_demo(args: argparse.Namespace) -> int:
    from intercept.demo import run_demo

    run_demo(args.listen)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from intercept.curation.scaffold import init_folder, next_steps

    for path in init_folder(args.folder):
        print(f"wrote {path}")
    print()
    print(next_steps(args.folder), end="")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from intercept.config import DEFAULT_CONFIG_YAML, load_config
    from intercept.configshow import shown_settings

    if args.default:
        print(DEFAULT_CONFIG_YAML, end="")
        return 0
    config = load_config(args.config)
    print(json.dumps(shown_settings(config, args.config), indent=2))
    return 0


def _report_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, got {text!r}") from None


def _report_dimensions(text: str) -> tuple[str, ...]:
    from intercept.research.report import DIMENSIONS

    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if names == ("none",):
        return ()
    for name in names:
        if name not in DIMENSIONS:
            raise argparse.ArgumentTypeError(
                f"unknown dimension {name!r}: choose from {', '.join(DIMENSIONS)} (or none)"
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a dimension is named twice in {text!r}")
    return names


def cmd_report(args: argparse.Namespace) -> int:
    """Research report (or, with --shadow, hits per shadow rule) from the ledger."""
    from intercept.research.ledger import LedgerReader
    from intercept.research.report import (
        build_report,
        build_shadow_report,
        load_data,
        render,
        render_shadow,
    )

    url, control, route_kinds, experiment = args.ledger, args.control, None, None
    if url is None or args.config is not None:
        from intercept.config import load_config

        config = load_config(args.config)
        url = url or config.ledger.url
        control = control or config.variants.control
        route_kinds = {route.name: route.kind for route in config.routes}
        named = [e for e in config.experiments if e.name == args.experiment]
        experiment = named[0] if named else None
        if url is None:
            print("intercept report: the ledger is off (ledger.url: null)", file=sys.stderr)
            return 2
    if args.experiment is not None:
        clashing = {"--from": args.date_from, "--to": args.date_to, "--control": args.control,
                    "--shadow": args.shadow}  # fmt: skip
        given = [flag for flag, value in clashing.items() if value]
        if given:
            print(f"intercept report: --experiment sets the days and the control, not "
                  f"{given[0]}", file=sys.stderr)  # fmt: skip
            return 2
        if experiment is None:
            print(f"intercept report: no experiment {args.experiment!r} in the configuration "
                  "(--config)", file=sys.stderr)  # fmt: skip
            return 2
        control = experiment.control
    today = datetime.now(UTC).date()
    if args.shadow:
        options = {
            "--from": args.date_from,
            "--to": args.date_to,
            "--by": args.by,
            "--dimensions": args.dimensions,
            "--control": args.control,
        }
        given = [flag for flag, value in options.items() if value is not None]
        if given:
            print(f"intercept report: --shadow takes --days, not {given[0]}", file=sys.stderr)
            return 2
        days = args.days if args.days is not None else 14
        start = today - timedelta(days=days - 1)
        with LedgerReader(url) as reader:
            data = load_data(reader, start, today, shadow=True)
        text = render_shadow(build_shadow_report(data, end=today, days=days, k=args.k), args.format)
    else:
        if args.days is not None:
            print("intercept report: --days goes with --shadow (use --from)", file=sys.stderr)
            return 2
        end = args.date_to or today
        start = args.date_from or end - timedelta(days=29)
        if start > end:
            print(f"intercept report: --from {start} is after --to {end}", file=sys.stderr)
            return 2
        with LedgerReader(url) as reader:
            if experiment is not None:
                from intercept.research.report.experiments import ExperimentError, experiment_days

                try:
                    start, end = experiment_days(reader, experiment, today)
                except ExperimentError as error:
                    print(f"intercept report: {error}", file=sys.stderr)
                    return 2
            data = load_data(reader, start, end)
        report = build_report(
            data,
            start=start,
            end=end,
            by=args.by or "week",
            dimensions=("category",) if args.dimensions is None else args.dimensions,
            k=args.k,
            control=control or "neutral",
            route_kinds=route_kinds,
        )
        text = render(report, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


def _within(value: _N, text: str, low: _N, high: _N | None, needs: str) -> _N:
    """`value`, read from the option's `text`, if it lies in [low, high] (no upper bound
    when `high` is None); else argparse's usage error `must be <needs>, got <text>`. A NaN
    lies in no range. Each option type stays a named function: argparse names the type in
    its message when the text is not a number at all (`invalid _positive value: 'x'`)."""
    inside = low <= value if high is None else low <= value <= high
    if not inside:
        raise argparse.ArgumentTypeError(f"must be {needs}, got {text}")
    return value


def _import_count(text: str) -> int:
    return _within(int(text), text, 0, None, "0 or more")


def _fraction(text: str) -> float:
    return _within(float(text), text, 0.0, 1.0, "between 0 and 1")


def _positive(text: str) -> int:
    return _within(int(text), text, 1, None, "at least 1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intercept",
        description="Deterrence-messaging and survey-intercept middleware for search engines.",
    )
    parser.add_argument("--version", action="version", version=f"intercept {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate rule files and run every rule's examples")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="rule file or folder")
    p.add_argument("--strict", action="store_true", help="fail on warnings too")
    _key_file_option(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("explain", help="show each normalization stage and every matching rule")
    p.add_argument("query")
    p.add_argument(
        "--rules",
        default=_rules_default(),
        type=Path,
        metavar="PATH",
        help="rule file or folder (default: $INTERCEPT_RULES or ./rules)",
    )
    p.add_argument("--json", action="store_true")
    _key_file_option(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("test", help="precision and recall over a labelled query corpus")
    p.add_argument("corpus", type=Path, metavar="CORPUS.csv", help="CSV with query,expect")
    p.add_argument("--rules", default=_rules_default(), type=Path, metavar="PATH")
    for measure in ("precision", "recall"):
        p.add_argument(
            f"--min-{measure}",
            type=_fraction,
            default=1.0,
            metavar="F",
            help=f"fail below this overall {measure} (default 1.0)",
        )
    p.add_argument("--json", action="store_true")
    _key_file_option(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("bench", help="compile time, memory and matching speed")
    p.add_argument("--rules", type=_positive, default=100_000, metavar="N")
    p.add_argument("--queries", type=_positive, default=200_000, metavar="N")
    p.add_argument(
        "--match-share",
        type=_fraction,
        default=0.1,
        metavar="F",
        help="share of queries holding a disguised rule phrase (default 0.1)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="run the reverse proxy in front of a search front-end")
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    p.add_argument("--listen", metavar="HOST:PORT", help="public listener (127.0.0.1:8080)")
    p.add_argument("--upstream", metavar="URL", help="the search front-end")
    p.add_argument("--rules", metavar="PATH", help="rule file or folder")
    p.add_argument("--messages", metavar="PATH", help="messages folder")
    p.add_argument("--admin-listen", metavar="HOST:PORT", help="admin listener")
    p.add_argument("--mode", choices=("proxy", "authz"))
    p.add_argument(
        "--workers", type=int, metavar="N", help="supervisor and N workers (default: 1 process)"
    )
    p.add_argument("--rules-key-file", metavar="FILE", help="key of a sealed rule bundle")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("reload", help="make a running server reload its rules and messages")
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    p.add_argument("--admin-listen", metavar="HOST:PORT", help="the server's admin listener")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("demo", help="a demo search site with Intercept in front, on loopback")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("init", help="write a starting config, example rules and editable pages")
    p.add_argument("folder", type=Path, metavar="DIR", help="where (created if missing)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("config", help="print the configuration (or the commented default)")
    p.add_argument("--default", action="store_true", help="the commented default file")
    p.add_argument("--config", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "seal", help="write a sealed bundle: the rules with every phrase as a keyed hash"
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="rule file or folder")
    _key_file_option(p)
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="the bundle to write")
    p.add_argument(
        "--skip-unsealable",
        action="store_true",
        help="leave out (and list) prefix and substring rules instead of refusing",
    )
    p.add_argument(
        "--new-key", type=Path, metavar="K", help="create a new key file K (mode 0600) and exit"
    )
    p.set_defaults(func=cmd_seal)

    p = sub.add_parser("feed", help="a signed rule feed: make its key, publish a version")
    feed_sub = p.add_subparsers(dest="feed_command", required=True, metavar="COMMAND")
    q = feed_sub.add_parser("keygen", help="write DIR/feed.key (private) and DIR/feed.pub")
    q.add_argument("folder", type=Path, metavar="DIR")
    q.add_argument("--force", action="store_true", help="replace an existing feed.key")
    q.set_defaults(func=cmd_feed)
    q = feed_sub.add_parser(
        "publish", help="validate the rules and write them as the next signed feed version"
    )
    q.add_argument("rules", type=Path, metavar="RULES", help="rule file or folder, or a bundle")
    q.add_argument("--key", type=Path, required=True, metavar="FILE", help="the feed.key")
    q.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="to serve")
    q.add_argument(
        "--rules-key-file",
        "--key-file",  # the name `check`, `seal` and a bundle's errors use
        type=Path,
        default=os.environ.get(KEY_FILE_ENV) or None,
        metavar="K",
        help=f"key file of a sealed bundle, to validate it (default: ${KEY_FILE_ENV})",
    )
    q.set_defaults(func=cmd_feed)

    p = sub.add_parser("schema", help="print the JSON Schema of rule files")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "diff", help="rules added, removed and changed; decisions that change on a corpus"
    )
    p.add_argument("old", type=Path, metavar="OLD", help="rule file or folder before the change")
    p.add_argument("new", type=Path, metavar="NEW", help="rule file or folder after the change")
    p.add_argument(
        "--corpus",
        type=Path,
        metavar="FILE",
        help="queries: one per line, or a CSV file (*.csv) with a 'query' column",
    )
    p.add_argument(
        "--fail-on",
        choices=("new-matches", "any-change"),
        help="exit 1 when a corpus query that matched nothing now matches, or on any change",
    )
    p.add_argument(
        "--show-terms", action="store_true", help="show changed phrases, not only their counts"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("import", help="write a rules YAML from a list of terms (text or CSV)")
    p.add_argument("file", type=Path, metavar="FILE", help="terms: one per line, or CSV")
    p.add_argument(
        "--format", choices=("txt", "csv"), help="default: csv for a *.csv file, else txt"
    )
    p.add_argument(
        "--column", metavar="NAME", help="CSV column of the terms (default: 'term', else the first)"
    )
    p.add_argument("--category", required=True, type=_import_option("category"), metavar="C")
    p.add_argument("--language", required=True, type=_import_option("language"), metavar="L")
    p.add_argument("--id-prefix", required=True, type=_import_option("id prefix"), metavar="P")
    p.add_argument("--action", choices=("block", "warn", "shadow"), default="shadow")
    p.add_argument("--match", choices=("word", "prefix", "substring"), default="word")
    p.add_argument("-o", "--output", type=Path, metavar="OUT.yaml", help="default: stdout")
    p.add_argument(
        "--wordlist",
        type=Path,
        metavar="PATH",
        help="dictionary words, one per line (default: /usr/share/dict/words if present)",
    )
    p.add_argument(
        "--max-dictionary-hits",
        type=_import_count,
        default=3,
        metavar="N",
        help="flag a term that matches more than N dictionary words (default 3)",
    )
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "report", help="research report from the ledger (counts, rates, click-through)"
    )
    p.add_argument("--ledger", metavar="URL", help="ledger URL (default: ledger.url of --config)")
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration file")
    p.add_argument(
        "--from",
        dest="date_from",
        type=_report_date,
        metavar="YYYY-MM-DD",
        help="first day, UTC (default: 29 days before --to)",
    )
    p.add_argument(
        "--to",
        dest="date_to",
        type=_report_date,
        metavar="YYYY-MM-DD",
        help="last day, UTC, included (default: today)",
    )
    p.add_argument("--by", choices=("day", "week", "month"), help="period (default: week)")
    p.add_argument(
        "--dimensions",
        type=_report_dimensions,
        metavar="LIST",
        help="comma-separated: category,action,language,variant, or none (default: category)",
    )
    p.add_argument("--format", choices=("csv", "json", "html"), default="csv")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here, not stdout")
    p.add_argument(
        "--k", type=_positive, default=10, metavar="K", help="suppress counts below K (default 10)"
    )
    p.add_argument(
        "--control",
        metavar="VARIANT",
        help="the message variant every other is compared with (default: variants.control of "
        "--config, else neutral)",
    )
    p.add_argument(
        "--experiment",
        metavar="NAME",
        help="the days and control of this experiment of --config, checked against the ledger",
    )
    p.add_argument("--shadow", action="store_true", help="hits per shadow rule id instead")
    p.add_argument(
        "--days",
        type=_positive,
        metavar="N",
        help="with --shadow: the last N days, today included (default 14)",
    )
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except RuleError as error:
        print(error, file=sys.stderr)
        return 1 if args.command in ("check",) else 2
    except (InterceptError, OSError) as error:
        print(f"intercept {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
