"""progress=True: a one-line bar on stderr when it is a terminal."""
import sys
import time


class _Bar:
    def __init__(self, stream):
        self.stream = stream
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done, total):
        now = time.monotonic()
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        frac = done / total if total else 1.0
        width = 30
        filled = int(frac * width)
        rate = done / max(now - self.start, 1e-9) / (1 << 20)
        self.stream.write("\r[%s%s] %5.1f%% %.1f/%.1f MiB %.0f MiB/s" % (
            "#" * filled, "." * (width - filled), 100 * frac, done / (1 << 20),
            total / (1 << 20), rate))
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def make_progress(progress):
    """None, a callable(bytes, total), or a bar for progress=True on a tty."""
    if callable(progress):
        return progress
    if progress and sys.stderr.isatty():
        return _Bar(sys.stderr)
    return None
