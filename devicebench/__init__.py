"""devicebench: latency you can trust, on the host, on ARM boards over SSH and on Android phones over ADB."""
