"""An image's ``HEALTHCHECK`` (here set by ``docker commit --change``) runs for containers made
from it through containerkitd, as dockerd's: inspect's ``State.Health``, ``docker ps``'s
``(healthy)``; ``--no-healthcheck`` turns it off (no ``State.Health``)."""

from __future__ import annotations

from typing import Any

from tests.daemon.test_restart_health import until

from .conftest import IMAGE


def test_the_images_healthcheck_runs_and_no_healthcheck_turns_it_off(client: Any, cli: Any) -> None:
    base = cli("create", IMAGE, "true").stdout.strip()
    made = [base]
    tag = "example/image-hc:1"
    try:
        change = "HEALTHCHECK --interval=200ms --retries=2 CMD test -f /tmp/ok"
        cli("commit", "--change", change, base, tag)
        checked = cli("run", "-d", tag, "sh", "-c", "touch /tmp/ok; sleep 1000").stdout.strip()
        made.append(checked)
        plain = cli("run", "-d", "--no-healthcheck", tag, "sleep", "1000").stdout.strip()
        made.append(plain)

        def status() -> str:
            health = client.api.inspect_container(checked)["State"].get("Health") or {}
            return str(health.get("Status") or "")

        until(lambda: status() == "healthy", "healthy from the image's HEALTHCHECK")
        ps = cli("ps", "--filter", f"id={checked}", "--format", "{{.Status}}").stdout
        assert ps.strip().endswith("(healthy)"), ps
        assert "Health" not in client.api.inspect_container(plain)["State"]
        plain_ps = cli("ps", "--filter", f"id={plain}", "--format", "{{.Status}}").stdout
        assert plain_ps.startswith("Up ") and "health" not in plain_ps, plain_ps
    finally:
        cli("rm", "-f", *made)
        cli("rmi", tag, check=False)
