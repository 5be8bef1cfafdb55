"""Bad input to every `skyrelay target …` and `skyrelay sync` command: a clear error, a
non-zero exit, and nothing stored changes. Run in-process with click's runner (the real
commands, a real SQLite site)."""

import pytest
from click.testing import CliRunner

from tests.site_kit import open_test_site
from model.archive.sample import SampleWriter
from model.export.queue import ExportQueue
from model.export.targets import Targets
from skyrelay.cli import cli

PASSWORD = "cli-secret-password-42"


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "config.yaml").write_text("exporter: {schedule: 'not a cron'}\n")
    site = open_test_site(f"sqlite:///{tmp_path}/var/skyrelay.db", tmp_path / "var/blobs")
    SampleWriter(site.archive, seed=4).fill(cameras=1, events_per_camera=2, files_per_event=1,
                                            standalone_per_camera=1)
    site.close()
    assert run(tmp_path, "target", "add", "a", "--url", "http://127.0.0.1:9/import",
               "--user", "u", "--password-stdin", stdin=PASSWORD + "\n").exit_code == 0
    return tmp_path


def run(folder, *args, stdin=None, env=None):
    return CliRunner().invoke(cli, ["--config", str(folder / "config.yaml"), *args],
                              input=stdin, env=env or {"SKYRELAY_TARGET_PASSWORD": None})


def snapshot(folder) -> list:
    site = open_test_site(f"sqlite:///{folder}/var/skyrelay.db", folder / "var/blobs")
    try:
        queue = ExportQueue(site.database)
        return [(t.to_json(), t.password.reveal(), queue.counts(t.target_id))
                for t in Targets(site.database).list()]
    finally:
        site.close()


ADD = ["target", "add", "b", "--url", "http://127.0.0.1:9/import", "--user", "u",
       "--password-stdin"]


def replace(args, old, new):
    args = list(args)
    args[args.index(old)] = new
    return args


@pytest.mark.parametrize("args, stdin, message", [
    (replace(ADD, "b", "a"), PASSWORD, "exists already"),
    (replace(ADD, "b", "bad name"), PASSWORD, "target name"),
    (replace(ADD, "http://127.0.0.1:9/import", "127.0.0.1:9/import"), PASSWORD, "http://"),
    (replace(ADD, "http://127.0.0.1:9/import", "http://u:pw@h/import"), PASSWORD,
     "no user or password in the URL"),
    (replace(ADD, "http://127.0.0.1:9/import", "http://h:0x50/import"), PASSWORD, "port"),
    (replace(ADD, "u", "a:b"), PASSWORD, "no ':'"),
    (ADD, "", "password: must not be empty"),
    (ADD[:-1], None, "no password: pass --password-stdin or set SKYRELAY_TARGET_PASSWORD"),
    (ADD + ["--protocol", "v3"], PASSWORD, "'v3' is not one of"),
    (ADD + ["--camera", "no spaces allowed"], PASSWORD, "camera"),
    (ADD + ["--event-type", ":meteor"], PASSWORD, "event_type"),
    (ADD + ["--after", "last tuesday"], PASSWORD, "after 'last tuesday'"),
    (ADD + ["--after", "2026-02-01", "--before", "2026-01-01"], PASSWORD, "earlier"),
    (ADD + ["--ca-bundle", "/no/such.pem"], PASSWORD, "ca_bundle"),
    (["target", "add", "b", "--user", "u"], PASSWORD, "Missing option '--url'"),
    (["target", "show", "nope"], None, "no export target 'nope'"),
    (["target", "check", "nope"], None, "no export target 'nope'"),
    (["target", "enable", "nope"], None, "no export target 'nope'"),
    (["target", "disable", "nope"], None, "no export target 'nope'"),
    (["target", "remove", "nope"], None, "no export target 'nope'"),
    (["target", "set", "nope", "--url", "http://h/import"], None, "no export target 'nope'"),
    (["target", "set", "a", "--url", "mailto:x@y"], None, "http://"),
    (["target", "set", "a", "--protocol", "v9"], None, "'v9' is not one of"),
    (["target", "set", "a", "--password-stdin"], "", "password: must not be empty"),
    (["sync", "--target", "nope"], None, "no export target 'nope'"),
    (["sync", "--every", "0"], None, "0"),
    (["sync", "--every", "5", "--schedule"], None, "exclude each other"),
    (["sync", "--schedule"], None, "is not a cron expression"),
])
def test_bad_input_is_refused_and_nothing_changes(folder, args, stdin, message):
    before = snapshot(folder)
    result = run(folder, *args, stdin=stdin)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert snapshot(folder) == before


def test_password_from_the_environment_and_never_printed(folder):
    result = run(folder, *ADD[:-1], env={"SKYRELAY_TARGET_PASSWORD": "env-secret-pw"})
    assert result.exit_code == 0, result.output
    assert "3 entities queued" in result.output
    outputs = [result.output] + [run(folder, *args).output for args in (
        ["target", "list"], ["target", "show", "b"], ["target", "disable", "b"],
        ["target", "enable", "b"])]
    for output in outputs:
        assert "env-secret-pw" not in output and PASSWORD not in output
    stored = {entry[0]["name"]: entry[1] for entry in snapshot(folder)}
    assert stored == {"a": PASSWORD, "b": "env-secret-pw"}


def test_list_show_enable_disable_remove(folder):
    assert "a\thttp://127.0.0.1:9/import\tuser=u\tauto\tok\tpending=3" in \
        run(folder, "target", "list").output
    assert run(folder, "target", "disable", "a").exit_code == 0
    assert "disabled" in run(folder, "target", "show", "a").output
    assert run(folder, "target", "enable", "a").exit_code == 0
    assert "state:             ok" in run(folder, "target", "show", "a").output
    assert run(folder, "target", "remove", "a").exit_code == 0
    assert snapshot(folder) == []
