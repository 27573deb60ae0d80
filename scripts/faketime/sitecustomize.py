"""Loaded by scripts/test-at under libfaketime: Playwright's driver and Chromium run on the real
clock, without the preloaded library (Chromium does not start with it)."""

import os

if os.environ.get("LD_PRELOAD", "").endswith("libfaketime.so.1"):

    def _real(env: dict) -> dict:
        return {k: v for k, v in env.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}

    try:
        from playwright._impl import _browser_type, _driver
    except ImportError:
        pass
    else:
        _driver_env = _driver.get_driver_env
        _driver.get_driver_env = lambda: _real(_driver_env())

        def _without_preload(launch):
            async def launched(self, *args, **kwargs):
                kwargs.setdefault("env", _real(os.environ))
                return await launch(self, *args, **kwargs)

            return launched

        for _name in ("launch", "launch_persistent_context"):
            _launch = getattr(_browser_type.BrowserType, _name)
            setattr(_browser_type.BrowserType, _name, _without_preload(_launch))
