"""An API process answers probes and metrics on its management port only, and its API on the other only."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from shared.testing import ServiceProcess, free_port, wait_until_ready
from shared.web import PROBLEM_CONTENT_TYPE
from shared.web.management import ApiPorts

SAMPLE = str(Path(__file__).with_name("sample_service.py"))


async def test_each_port_answers_its_own_paths_and_404s_the_others() -> None:
    api, management = free_port(), free_port()
    process = ServiceProcess(
        [sys.executable, SAMPLE],
        env={"SAMPLE_PORT": str(api), "SAMPLE_MANAGEMENT_PORT": str(management), "SAMPLE_WORK_SECONDS": "0"},
    )
    await process.start()
    try:
        await wait_until_ready(management, what="sample", process=process)
        statuses = {}
        async with aiohttp.ClientSession() as http:
            for port in (api, management):
                for path in ("/slow", "/healthz", "/readyz", "/metrics"):
                    # A Host header naming the other port changes nothing: the socket decides.
                    other = management if port == api else api
                    async with http.get(f"http://127.0.0.1:{port}{path}", headers={"Host": f"x:{other}"}) as answer:
                        statuses[port == management, path] = answer.status
                        if answer.status == 404:
                            assert answer.content_type == PROBLEM_CONTENT_TYPE
    finally:
        await process.stop()
    assert statuses == {
        (False, "/slow"): 200,
        (False, "/healthz"): 404,
        (False, "/readyz"): 404,
        (False, "/metrics"): 404,
        (True, "/slow"): 404,
        (True, "/healthz"): 200,
        (True, "/readyz"): 200,
        (True, "/metrics"): 200,
    }


def test_one_port_for_both_is_refused() -> None:
    with pytest.raises(ValidationError, match="management port must not be the API's port"):
        ApiPorts(port=8080, management_port=8080)
