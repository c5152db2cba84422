"""``python -m examples.device_login`` pointed at a server that is not there: one line that names
where it tried and how to point it elsewhere (a moved ``tessera dev`` port is the usual cause)."""

from __future__ import annotations

import pytest

from examples import device_login
from tests.support.servers import free_port


def test_nothing_at_the_issuer_is_one_line_naming_it_and_the_option() -> None:
    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(SystemExit) as ended:
        device_login.main(["--issuer", issuer, "--client-id", "some-client"])
    said = str(ended.value.code)
    assert said.startswith(f"device login: cannot reach {issuer} (")
    assert said.endswith("; --issuer names another server") and "\n" not in said
