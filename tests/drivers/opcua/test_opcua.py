"""The OPC UA driver against the real asyncua simulator: subscriptions, status codes, security, trust, restart."""

from __future__ import annotations

import asyncio
import shutil

import pytest
import pytest_asyncio
from asyncua import ua

from drivers.opcua.config import OpcUaConfig
from gateway.errors import DriverFatal, NotConnected
from gateway.model import ALARM
from simulators.opcua import OpcUaSim, make_certificate
from tests.conftest import eventually
from tests.drivers.readings import take  # noqa: F401 - used by the tests here

pytestmark = pytest.mark.asyncio(loop_scope="module")
CLIENT_URI = "urn:shopfloor:gateway"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(tmp_path_factory):
    async with OpcUaSim(period=0.05, cert_dir=tmp_path_factory.mktemp("server")) as s:
        yield s


@pytest.fixture(scope="module")
def pki(tmp_path_factory, sim):
    """A client certificate, a trust folder holding the simulator's certificate, and an empty one."""
    root = tmp_path_factory.mktemp("pki")
    cert, key = make_certificate(root / "own", "gateway", CLIENT_URI, server=False)
    (root / "trusted").mkdir()
    shutil.copy(sim.cert, root / "trusted" / "simulator.der")
    (root / "empty").mkdir()
    other, _ = make_certificate(root / "other", "someone-else", "urn:other", server=True)
    shutil.copy(other, root / "empty" / "other.der")
    (root / "password").write_text("secret\n")
    (root / "wrong").write_text("guess\n")
    return root, cert, key


def config(sim, nodes, **kw) -> OpcUaConfig:
    return OpcUaConfig(kind="opcua", name="ua", url=sim.url, timeout=2, watchdog=0.5, sampling=0.05, nodes=nodes, **kw)




async def test_values_arrive_through_a_subscription_by_nodeid_and_browse_path(sim):
    driver = config(sim, [
        {"name": "temp", "node": sim.nodeid("press_temperature"), "unit": "degC"},
        {"name": "pressure", "path": f"{sim.ns}:Press1/{sim.ns}:hydraulic_pressure", "unit": "bar"},
        {"name": "recipe", "node": sim.nodeid("recipe")},
        {"name": "parts", "node": sim.nodeid("part_counter")},
    ]).build()
    await driver.connect()
    try:
        got = await take(driver, 12)
    finally:
        await driver.aclose()
    by = {}
    for r in got:
        by.setdefault(r.tag, []).append(r)
    assert set(by) == {"temp", "pressure", "recipe", "parts"}
    assert all(r.quality == "good" for r in got)
    assert 170 < by["temp"][0].value < 190 and by["temp"][0].unit == "degC"
    assert by["recipe"][0].value == "RCP-A42" and by["parts"][0].value >= 5_000_000_000
    assert len(by["pressure"]) > 1 and len({r.value for r in by["pressure"]}) > 1  # it moves: changes arrive
    assert all(abs(r.ts - got[0].ts) < 60 for r in got)  # source timestamps, as epoch seconds


async def test_status_codes_become_quality_and_a_missing_node_is_one_bad_reading(sim):
    driver = config(sim, [
        {"name": "force", "node": sim.nodeid("press_force")},
        {"name": "ghost", "node": f"ns={sim.ns};s=Press1.no_such_tag"},
        {"name": "lost", "path": f"{sim.ns}:Press1/{sim.ns}:nothing"},
    ]).build()
    await driver.connect()
    try:
        first = await take(driver, 3)
        ghosts = {r.tag: r for r in first if r.tag in ("ghost", "lost")}
        assert ghosts["ghost"].quality == "bad" and "BadNodeIdUnknown" in ghosts["ghost"].reason
        assert ghosts["lost"].quality == "bad" and "browse path" in ghosts["lost"].reason
        await sim.set_status("press_force", "BadSensorFailure")
        bad = await take(driver, 1, where=lambda r: r.quality == "bad")
        assert bad[0].tag == "force" and bad[0].value is None and bad[0].reason == "BadSensorFailure"
        await sim.set_status("press_force", "UncertainLastUsableValue")
        unc = await take(driver, 1, where=lambda r: r.quality == "uncertain")
        assert unc[0].reason == "UncertainLastUsableValue" and unc[0].value is not None
        await sim.set_status("press_force", None)
        assert await take(driver, 1, where=lambda r: r.tag == "force" and r.quality == "good")
    finally:
        await sim.set_status("press_force", None)
        await driver.aclose()


async def test_deadband_heartbeat_and_limits(sim):
    await sim.set("vibration", 2.0)
    driver = config(sim, [{"name": "vib", "node": sim.nodeid("vibration"), "deadband": 0.5, "heartbeat": 0.3,
                           "limits": {"high": 4.0}}]).build()
    await driver.connect()
    try:
        first = await take(driver, 1)
        await sim.set("vibration", 2.2)  # inside the deadband: filtered by the server
        beats = await take(driver, 2, timeout=3)
        assert [r.value for r in beats] == pytest.approx([2.0, 2.0])  # heartbeats of the unchanged value
        assert beats[0].ts - first[0].ts >= 0.29
        await sim.set("vibration", 5.0)
        got = await take(driver, 2, where=lambda r: r.value == pytest.approx(5.0))
        assert {r.type for r in got} == {"telemetry", ALARM}
    finally:
        sim.pinned.pop("vibration", None)
        await driver.aclose()


async def test_sign_and_encrypt_with_client_certificate_and_password(sim, pki):
    root, cert, key = pki
    driver = config(sim, [{"name": "temp", "node": sim.nodeid("press_temperature")}],
                    security={"mode": "SignAndEncrypt", "certificate": cert, "private_key": key, "trust": [root / "trusted"]},
                    username="operator", password_file=root / "password", application_uri=CLIENT_URI).build()
    await driver.connect()
    try:
        policy = driver.client.security_policy
        assert policy.URI.endswith("#Basic256Sha256") and policy.Mode == 3  # SignAndEncrypt
        assert (await take(driver, 2))[0].quality == "good"
    finally:
        await driver.aclose()


async def test_sign_only(sim, pki):
    root, cert, key = pki
    driver = config(sim, [{"name": "temp", "node": sim.nodeid("press_temperature")}],
                    security={"mode": "Sign", "certificate": cert, "private_key": key, "trust": [root / "trusted"]},
                    application_uri=CLIENT_URI).build()
    await driver.connect()
    try:
        assert driver.client.security_policy.Mode == 2
        assert len(await take(driver, 1)) == 1
    finally:
        await driver.aclose()


async def test_untrusted_server_is_refused_with_a_clear_error(sim, pki):
    root, cert, key = pki
    driver = config(sim, [{"name": "temp", "node": sim.nodeid("press_temperature")}],
                    security={"certificate": cert, "private_key": key, "trust": [root / "empty"]},
                    username="operator", password_file=root / "password", application_uri=CLIENT_URI).build()
    with pytest.raises(DriverFatal) as err:
        await driver.connect()
    await driver.aclose()
    text = str(err.value)
    assert "not trusted" in text and "CN=simulator" in text and str(root / "empty") in text
    assert "thumbprint" in text and ":" in text.split("thumbprint")[1]


async def test_wrong_password_is_fatal(sim, pki):
    root, cert, key = pki
    driver = config(sim, [{"name": "temp", "node": sim.nodeid("press_temperature")}],
                    security={"certificate": cert, "private_key": key, "trust": [root / "trusted"]},
                    username="operator", password_file=root / "wrong", application_uri=CLIENT_URI).build()
    with pytest.raises(DriverFatal, match="BadUserAccessDenied|BadIdentityTokenRejected"):
        await driver.connect()
    await driver.aclose()


async def test_silent_server_is_a_lost_link(sim):
    driver = config(sim, [{"name": "temp", "node": sim.nodeid("hydraulic_pressure")}]).build()
    await driver.connect()
    try:
        await take(driver, 1)
        sim.fault = "silent"
        with pytest.raises(NotConnected):
            await take(driver, 1000, timeout=10)
    finally:
        sim.fault = None
        await driver.aclose()


async def test_server_restart_restores_the_flow_without_restarting_the_driver(tmp_path, pki):
    """The supervisor's loop in miniature: connect, read until NotConnected, close, retry."""
    root, cert, key = pki
    async with OpcUaSim(period=0.05, cert_dir=tmp_path) as sim:
        (root / "trusted-restart").mkdir(exist_ok=True)
        shutil.copy(sim.cert, root / "trusted-restart" / "sim.der")
        driver = config(sim, [{"name": "pressure", "node": sim.nodeid("hydraulic_pressure")}],
                        security={"certificate": cert, "private_key": key, "trust": [root / "trusted-restart"]},
                        application_uri=CLIENT_URI).build()
        sessions, values = 0, []

        async def supervise():
            nonlocal sessions
            while True:
                try:
                    await driver.connect()
                    sessions += 1
                    async for r in driver.readings():
                        values.append((sessions, r))
                except NotConnected:
                    pass
                finally:
                    await driver.aclose()
                await asyncio.sleep(0.2)

        task = asyncio.create_task(supervise())
        try:
            await eventually(lambda: len(values) >= 3, timeout=5, what="readings of the first session")
            await sim.restart(downtime=0.5)
            await eventually(lambda: sum(1 for s, _ in values if s >= 2) >= 3, timeout=10, what="readings of a new session")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert sim.starts == 2
        assert sessions >= 2, "the driver never re-created its session"
        after = [r for s, r in values if s >= 2]
        assert len(after) >= 3 and all(r.quality == "good" for r in after)


STRUCTS = ["batch", "batches", "unit", "label", "qname", "ref", "blob", "stamp", "mixed", "doubles"]


async def test_structured_values_arrive_as_json_objects(sim):
    import orjson

    driver = config(sim, [{"name": n, "node": sim.nodeid(n)} for n in STRUCTS]).build()
    await driver.connect()
    try:
        got = {r.tag: r for r in await take(driver, len(STRUCTS))}
    finally:
        await driver.aclose()
    batch = {"Lot": "LOT-A42", "Quantity": 120, "Setpoints": [180.0, 182.5], "Started": "2026-01-02T03:04:05+00:00", "Label": "Pressing"}
    assert {n: r.value for n, r in got.items()} == {
        "batch": batch,
        "batches": [batch, {**batch, "Lot": "LOT-B7", "Quantity": 5}],
        "unit": {"NamespaceUri": "http://www.opcfoundation.org/UA/units/un/cefact", "UnitId": 4408652, "DisplayName": "°C",
                 "Description": "degree Celsius"},
        "label": "Presse 1", "qname": f"{sim.ns}:Press1", "ref": f"ns={sim.ns};s=Press1.recipe", "blob": "0001feff",
        "stamp": "2026-01-02T03:04:05+00:00", "mixed": [7, "seven", 7.5], "doubles": [float(i) for i in range(10)],
    }
    assert all(r.quality == "good" for r in got.values())
    orjson.dumps([r.value for r in got.values()])  # plain JSON: no fallback to repr needed


async def test_long_strings_and_arrays_are_cut_and_marked_truncated(sim):
    import orjson

    nodes = [{"name": n, "node": sim.nodeid(n)} for n in ("text", "doubles", "number")]
    driver = config(sim, nodes, max_string=1000, max_array=4).build()
    await driver.connect()
    try:
        doubles = {r.tag: r for r in await take(driver, 3)}["doubles"]
        await sim.write("text", "x" * 8_000_000)
        (text,) = await take(driver, 1, where=lambda r: r.tag == "text")
        await sim.write("doubles", [1.0, float("nan")])
        (nan,) = await take(driver, 1, where=lambda r: r.tag == "doubles" and r.value != doubles.value)
        await sim.write("number", float("inf"), ua.VariantType.Double)
        (inf,) = await take(driver, 1, where=lambda r: r.tag == "number")
    finally:
        await sim.write("number", 1.5, ua.VariantType.Double)
        await sim.write("text", "short")
        await sim.write("doubles", [float(i) for i in range(10)])
        await driver.aclose()
    assert text.quality == "uncertain" and len(text.value) == 1000 and len(orjson.dumps(text.value)) < 1100
    assert text.reason == "truncated: text of 8000000 characters cut to 1000 (max_string 1000)"
    assert doubles.quality == "uncertain" and doubles.value == [0.0, 1.0, 2.0, 3.0] and "max_array 4" in doubles.reason
    assert nan.quality == "uncertain" and nan.value == [1.0, None] and "nan" in nan.reason
    assert inf.quality == "bad" and inf.value is None and inf.reason == "value is inf"
    assert driver.counters["truncated"] >= 3
