"""Many probes and one answer: ablate, calibrate, gate and bisect (each over a typed settings object), the
regime they choose by themselves, the probe cache, the executors that run the probes (local processes or
Ray), and git access for bisect."""
