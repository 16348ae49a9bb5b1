pytest_plugins = ["shared.testing.plugin", "pytester"]
