"""The real weightd binary in a child process, for the Python tests.

    daemon = WeightdProcess(WEIGHTD, repo, "--tls_cert", ...)
    ... daemon.address (HOST:PORT from its first stdout line), daemon.port ...
    daemon.stop()
"""
import subprocess


class WeightdProcess:
    def __init__(self, binary, repository, *flags, preexec_fn=None):
        self.process = subprocess.Popen(
            [binary, "--repository", repository, "--listen", "127.0.0.1:0", "--minloglevel",
             "2", *flags], stdout=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("%s did not start: %r" % (binary, line))
        self.address = line.split()[-1]
        self.port = self.address.rsplit(":", 1)[1]

    def stop(self):
        """SIGTERM, then the exit status."""
        self.process.terminate()
        code = self.process.wait(timeout=60)
        self.process.stdout.close()
        return code
