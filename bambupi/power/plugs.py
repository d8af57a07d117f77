"""Smart plug drivers: one small :class:`Plug` interface, one class per kind of plug.

Modelled on Moonraker's ``power.py`` (one ``PowerDevice`` base, a subclass per device type). Every driver speaks
HTTP through ``httpx.AsyncClient``, which runs on trio; every request has a total deadline (``timeout_s``) and a
bounded answer (:mod:`bambupi.outgoing`). Failures raise
:class:`PlugError` whose message names the plug's address and what went wrong, never a password or token (the
original httpx exception is dropped, since its text can carry a URL with Tasmota's credentials in the query).

Example::

    plug = make_plug(PlugConfig(kind="tasmota", address="http://192.168.1.60"))
    reading = await plug.read()          # PlugReading(on=True, watts=182.5, total_kwh=12.3)
    await plug.switch(False)
    await plug.aclose()
"""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import httpx
import trio

from bambupi import outgoing
from bambupi.config import PlugConfig
from bambupi.config.model import PlugKind

log = logging.getLogger("bambupi.power")
# httpx logs every request URL at INFO; a Tasmota URL carries the plug's password in its query string.
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_BODY_BYTES: Final = 256 * 1024


@dataclass(frozen=True)
class PlugReading:
    """What a plug says now. ``watts`` and ``total_kwh`` are None when the plug does not measure them."""

    on: bool
    watts: float | None
    total_kwh: float | None  # the plug's own lifetime counter, as it reports it

    def to_json(self) -> dict[str, Any]:
        return {"on": self.on, "watts": self.watts, "total_kwh": self.total_kwh}


class PlugError(Exception):
    """A plug could not be read or switched; the message is safe to log and to show (no credentials)."""


class Plug(ABC):
    """One smart plug. Subclasses implement :meth:`read` and :meth:`switch` over :meth:`_request`, using only the
    options their kind takes (``bambupi.config.schema.PLUG_KINDS``: any other is refused when the config is read)."""

    kind: ClassVar[PlugKind]

    def __init__(self, config: PlugConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.address = config.address
        self._where = _safe_address(config.address)
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(config.timeout_s), follow_redirects=False, trust_env=False
        )

    @abstractmethod
    async def read(self) -> PlugReading: ...

    @abstractmethod
    async def switch(self, on: bool) -> None: ...

    async def aclose(self) -> None:
        await self._client.aclose()

    def describe(self) -> str:
        return f"{self.kind} plug at {self._where}"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body; PlugError for anything else."""
        url = self.address + path
        try:
            # One deadline for the whole exchange, and the answer read up to the limit, never more: anything on
            # the LAN can answer at the plug's address, as slowly and as much as it likes.
            answer = await outgoing.send(
                self._client, method, url, deadline_s=self.config.timeout_s, max_bytes=MAX_BODY_BYTES,
                params=params, json=body, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT,
            )
        except (trio.TooSlowError, httpx.TimeoutException):
            raise PlugError(f"{self.describe()}: no answer within {self.config.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            # Name the failure's type only: httpx messages may quote the URL (and Tasmota's password in it).
            raise PlugError(f"{self.describe()}: cannot reach it ({_why(exc)})") from None
        except (httpx.InvalidURL, ValueError) as exc:
            # The request cannot even be built (a token httpx cannot put in a header, a path it cannot put in a
            # URL): a setting is wrong. A PlugError like any other failure, never a crash of the power service.
            raise PlugError(
                f"{self.describe()}: cannot send a request with these settings ({type(exc).__name__}); "
                "check the plug's token or password"
            ) from None
        if answer.status in (401, 403):
            raise PlugError(f"{self.describe()}: credentials refused (HTTP {answer.status})")
        if answer.status != 200:
            raise PlugError(f"{self.describe()}: HTTP {answer.status} for {path}")
        if not answer.complete:
            raise PlugError(f"{self.describe()}: answer too large (over {MAX_BODY_BYTES} bytes)")
        try:
            return json.loads(answer.body)
        except (ValueError, UnicodeDecodeError):
            raise PlugError(f"{self.describe()}: answered something that is not JSON") from None
        except RecursionError:
            raise PlugError(f"{self.describe()}: answered JSON nested too deeply") from None

    def _malformed(self, what: str) -> PlugError:
        return PlugError(f"{self.describe()}: unexpected answer ({what})")


class TasmotaPlug(Plug):
    """Tasmota firmware: ``/cm?cmnd=Power``, ``Power On|Off``, ``Status 8`` (``StatusSNS.ENERGY``).

    With a web password, Tasmota takes ``user`` and ``password`` as query parameters (its documented API).
    """

    kind = "tasmota"

    async def _command(self, command: str) -> Any:
        params = {"cmnd": command}
        if self.config.password is not None:
            params = {"user": self.config.username or "admin", "password": self.config.password.reveal(), **params}
        body = await self._request("GET", "/cm", params=params)
        if not isinstance(body, dict):
            raise self._malformed("not a JSON object")
        if "WARNING" in body:  # Tasmota's answer to a wrong password: 200 with {"WARNING": "Need user=..."}
            raise PlugError(f"{self.describe()}: credentials refused")
        return body

    def _power_state(self, body: Mapping[str, Any]) -> bool:
        value = body.get("POWER", body.get("POWER1"))
        if value not in ("ON", "OFF"):
            raise self._malformed("no POWER state")
        return bool(value == "ON")

    async def read(self) -> PlugReading:
        on = self._power_state(await self._command("Power"))
        status = await self._command("Status 8")
        energy = status.get("StatusSNS", {}).get("ENERGY") if isinstance(status.get("StatusSNS"), dict) else None
        if not isinstance(energy, dict):
            # A plug without a power meter answers Status 8 without ENERGY: it can still be switched.
            return PlugReading(on=on, watts=None, total_kwh=None)
        return PlugReading(on=on, watts=_number(energy.get("Power")), total_kwh=_number(energy.get("Total")))

    async def switch(self, on: bool) -> None:
        if self._power_state(await self._command("Power On" if on else "Power Off")) != on:
            raise PlugError(f"{self.describe()}: did not switch {'on' if on else 'off'}")


class ShellyGen1Plug(Plug):
    """Shelly Gen1 (Plug S, 1PM): ``/status`` (``relays[i].ison``, ``meters[i].power``, ``total`` in
    watt-minutes), ``/relay/<i>?turn=on|off``; HTTP basic auth when a password is set."""

    kind = "shelly1"

    def _auth(self) -> httpx.Auth | None:
        if self.config.password is None:
            return None
        return httpx.BasicAuth(self.config.username or "admin", self.config.password.reveal())

    async def read(self) -> PlugReading:
        body = await self._request("GET", "/status", auth=self._auth())
        channel = self.config.channel
        try:
            relay = body["relays"][channel]
            on = relay["ison"]
        except (KeyError, IndexError, TypeError):
            raise self._malformed(f"no relays[{channel}].ison") from None
        if not isinstance(on, bool):
            raise self._malformed("relay state is not true/false")
        meters = body.get("meters") if isinstance(body, dict) else None
        meter = meters[channel] if isinstance(meters, list) and len(meters) > channel else None
        if not isinstance(meter, dict):
            return PlugReading(on=on, watts=None, total_kwh=None)
        minutes = _number(meter.get("total"))
        return PlugReading(
            on=on,
            watts=_number(meter.get("power")),
            total_kwh=None if minutes is None else minutes / 60_000.0,  # watt-minutes -> kWh
        )

    async def switch(self, on: bool) -> None:
        body = await self._request(
            "GET", f"/relay/{self.config.channel}", params={"turn": "on" if on else "off"}, auth=self._auth()
        )
        if not isinstance(body, dict) or body.get("ison") is not on:
            raise PlugError(f"{self.describe()}: did not switch {'on' if on else 'off'}")


class ShellyGen2Plug(Plug):
    """Shelly Gen2+ RPC (Plus Plug S, Pro, Gen3): ``/rpc/Switch.GetStatus?id=N`` (``output``, ``apower``,
    ``aenergy.total`` in Wh), ``/rpc/Switch.Set?id=N&on=true|false``; digest auth (user ``admin``) when a
    password is set."""

    kind = "shelly2"

    def _auth(self) -> httpx.Auth | None:
        if self.config.password is None:
            return None
        return httpx.DigestAuth("admin", self.config.password.reveal())

    async def read(self) -> PlugReading:
        body = await self._request(
            "GET", "/rpc/Switch.GetStatus", params={"id": str(self.config.channel)}, auth=self._auth()
        )
        if not isinstance(body, dict) or not isinstance(body.get("output"), bool):
            raise self._malformed("no boolean 'output'")
        energy = body.get("aenergy")
        wh = _number(energy.get("total")) if isinstance(energy, dict) else None
        return PlugReading(
            on=body["output"], watts=_number(body.get("apower")), total_kwh=None if wh is None else wh / 1000.0
        )

    async def switch(self, on: bool) -> None:
        body = await self._request(
            "GET",
            "/rpc/Switch.Set",
            params={"id": str(self.config.channel), "on": "true" if on else "false"},
            auth=self._auth(),
        )
        if not isinstance(body, dict) or "was_on" not in body:
            raise self._malformed("no 'was_on' in the Switch.Set answer")


class HomeAssistantPlug(Plug):
    """Any switch Home Assistant knows, through its REST API and a long-lived access token: ``entity`` is the
    switch (``switch.*``, ``input_boolean.*``, ``light.*``), ``power_entity`` an optional power sensor in W or kW."""

    kind = "homeassistant"

    def _headers(self) -> dict[str, str]:
        token = self.config.token.reveal() if self.config.token is not None else ""
        return {"Authorization": f"Bearer {token}"}

    async def _state(self, entity: str) -> dict[str, Any]:
        body = await self._request("GET", f"/api/states/{entity}", headers=self._headers())
        if not isinstance(body, dict) or not isinstance(body.get("state"), str):
            raise self._malformed(f"no state for {entity}")
        return body

    async def read(self) -> PlugReading:
        entity = self.config.entity or ""
        state = (await self._state(entity))["state"]
        if state not in ("on", "off"):
            raise PlugError(f"{self.describe()}: {entity} is {state!r}, not on or off")
        watts = None
        if self.config.power_entity:
            sensor = await self._state(self.config.power_entity)
            watts = _number(sensor["state"])
            attributes = sensor.get("attributes")
            unit = attributes.get("unit_of_measurement") if isinstance(attributes, dict) else None
            if watts is not None and unit == "kW":
                watts *= 1000.0
        return PlugReading(on=state == "on", watts=watts, total_kwh=None)

    async def switch(self, on: bool) -> None:
        entity = self.config.entity or ""
        domain = entity.split(".", 1)[0]
        await self._request(
            "POST",
            f"/api/services/{domain}/{'turn_on' if on else 'turn_off'}",
            body={"entity_id": entity},
            headers=self._headers(),
        )


_DRIVERS: Final[Mapping[PlugKind, type[Plug]]] = {
    cls.kind: cls for cls in (TasmotaPlug, ShellyGen1Plug, ShellyGen2Plug, HomeAssistantPlug)
}


def make_plug(config: PlugConfig, *, client: httpx.AsyncClient | None = None) -> Plug:
    """The driver for ``config.kind`` (the config loader only accepts known kinds)."""
    return _DRIVERS[config.kind](config, client=client)


def _number(value: Any) -> float | None:
    """A finite number from a JSON value (numbers and numeric strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _safe_address(address: str) -> str:
    # The configured address could hold "user:password@"; show only scheme, host and port.
    parts = urlsplit(address)
    host = parts.hostname or "?"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + (f":{parts.port}" if parts.port else "")


def _why(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection broke"
    return type(exc).__name__
