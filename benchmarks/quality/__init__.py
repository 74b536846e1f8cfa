"""Quality benchmarks on published data: the CDNOW benchmark and its ceiling study."""
