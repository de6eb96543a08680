"""/metrics as a plant's monitoring sees it: a real Prometheus scrapes the running gateway, promtool
lints the exposition and the shipped rules, and a token keeps strangers out."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest

from simulators.broker import free_port
from tests.conftest import InProcess, write_config

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
OVEN = {"kind": "synthetic", "name": "oven", "rate": 100, "tags": 2}
FLAKY = {"kind": "synthetic", "name": "press", "rate": 50, "tags": 1, "crash_every": 20, "backoff_initial": 0.05, "backoff_max": 0.1}

needs_prometheus = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="Debian's prometheus package is not installed (scripts/setup installs it)")


async def scrape(port: int, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r:
        return r.status, await r.text()


async def listening(port: int, timeout: float = 30.0) -> None:
    """Wait (without blocking the loop the gateway runs on) until something accepts on `port`."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.05)


def value(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return None


@needs_prometheus
async def test_metrics_lint_clean_and_count_what_happens(tmp_path, broker):
    port = free_port()
    path = write_config(tmp_path, broker.port, [OVEN, FLAKY], http={"port": port})
    async with InProcess(path) as gw:
        await gw.wait_status(lambda st: st["counters"]["published"] > 200 and {d["device"]: d for d in st["devices"]}["press"]["crashes"] > 0)
        await listening(port)
        status, text = await scrape(port)
    assert status == 200
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert value(text, "shopfloor_readings_read_total", device="oven", type="telemetry") > 0
    assert value(text, "shopfloor_records_published_total", device="oven", type="telemetry") > 0
    assert value(text, "shopfloor_records_captured_total", device="oven", type="telemetry") >= value(text, "shopfloor_records_published_total", device="oven", type="telemetry")
    assert value(text, "shopfloor_buffer_records_total", outcome="captured") > 0
    assert value(text, "shopfloor_device_state", device="oven", kind="synthetic", state="connected") == 1
    assert value(text, "shopfloor_device_crashes_total", device="press") >= 1
    assert value(text, "shopfloor_broker_up") == 1
    assert value(text, "shopfloor_delivery_latency_seconds_count") > 0
    assert value(text, "process_resident_memory_bytes") > 0
    assert value(text, "shopfloor_buffer_disk_free_bytes") > 0


async def test_the_achieved_poll_period_of_each_poll_group_is_a_histogram(tmp_path, broker):
    from simulators.modbus import ModbusSim

    port = free_port()
    async with ModbusSim(port=0) as sim:
        plc = {"kind": "modbus", "name": "press1", "host": "127.0.0.1", "port": sim.port, "polls": [
            {"interval": 0.1, "tags": [{"name": "press_temperature", "address": 0, "type": "float32"}]},
            {"interval": 0.5, "tags": [{"name": "spindle_speed", "address": 6, "type": "uint16"}]}]}
        async with InProcess(write_config(tmp_path, broker.port, [plc], http={"port": port})) as gw:
            st = await gw.wait_status(lambda st: len(st["devices"][0]["poll_period"]) == 2)
            await listening(port)
            _, text = await scrape(port)
    periods = st["devices"][0]["poll_period"]
    assert 0.09 <= periods["unit1/poll0"] < periods["unit1/poll1"]  # the 100 ms group polls more often than the 500 ms one
    assert value(text, "shopfloor_poll_period_seconds_count", device="press1", group="unit1/poll0") >= 1
    assert value(text, "shopfloor_poll_period_seconds_bucket", device="press1", group="unit1/poll1", le="+Inf") >= 1


async def test_a_token_is_required_when_configured(tmp_path, broker):
    port = free_port()
    (tmp_path / "token").write_text("s3cret-token\n")
    path = write_config(tmp_path, broker.port, [OVEN], http={"port": port, "token_file": str(tmp_path / "token")})
    async with InProcess(path):
        await listening(port)
        assert (await scrape(port))[0] == 401
        assert (await scrape(port, "wrong"))[0] == 401
        assert (await scrape(port, "s3cret-token"))[0] == 200


def test_listening_off_loopback_without_a_token_is_a_config_error(tmp_path):
    from gateway import config
    from gateway.errors import ConfigError

    path = write_config(tmp_path, 1883, [], http={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="token"):
        config.load(path)


@needs_prometheus
def test_shipped_scrape_config_and_alerting_rules_are_valid(tmp_path):
    rules = subprocess.run([PROMTOOL, "check", "rules", str(ROOT / "config/prometheus/alerts.yml")], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The scrape config names a token file that exists only on a real server: check a copy that points at one.
    token = tmp_path / "token"
    token.write_text("t\n")
    scrape_yml = (ROOT / "config/prometheus/scrape.yml").read_text().replace("/etc/prometheus/shopfloor-gateway.token", str(token))
    shutil.copy(ROOT / "config/prometheus/alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "scrape.yml").write_text(scrape_yml)
    conf = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "scrape.yml")], capture_output=True, text=True)
    assert conf.returncode == 0, conf.stdout + conf.stderr


@needs_prometheus
async def test_a_real_prometheus_scrapes_the_gateway_with_its_token(tmp_path, broker):
    port, prom_port = free_port(), free_port()
    token = tmp_path / "token"
    token.write_text("scrape-token\n")
    path = write_config(tmp_path, broker.port, [OVEN], http={"port": port, "token_file": str(token)})
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{ROOT / 'config/prometheus/alerts.yml'}]\n"
        "scrape_configs:\n"
        "  - job_name: shopfloor-gateway\n"
        f"    authorization: {{type: Bearer, credentials_file: {token}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    prom = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"),
    )
    try:
        async with InProcess(path):
            await listening(prom_port)
            query = f"http://127.0.0.1:{prom_port}/api/v1/query"
            async with aiohttp.ClientSession() as s, asyncio.timeout(60):
                while True:  # 503 until its storage is open
                    async with s.get(f"http://127.0.0.1:{prom_port}/-/ready") as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(0.1)
                while True:
                    async with s.get(query, params={"query": 'shopfloor_records_published_total{device="oven"}'}) as r:
                        result = (await r.json())["data"]["result"]
                    if result and float(result[0]["value"][1]) > 0:
                        break
                    await asyncio.sleep(0.2)
                async with s.get(query, params={"query": 'up{job="shopfloor-gateway"}'}) as r:
                    assert float((await r.json())["data"]["result"][0]["value"][1]) == 1
                async with s.get(f"http://127.0.0.1:{prom_port}/api/v1/rules") as r:
                    groups = (await r.json())["data"]["groups"]
                assert {rule["name"] for g in groups for rule in g["rules"]} >= {"ShopfloorBrokerDown", "ShopfloorDeviceDown", "ShopfloorBufferGrowing"}
    finally:
        prom.terminate()
        prom.wait(10)
