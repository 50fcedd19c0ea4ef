"""A ``zoo_result`` observer that fills the disk holding ``$ZOO_TEST_FILL`` after the first
record is saved: the next record then meets a full disk, as a nightly run's disk might."""

import os

import zoo


@zoo.hookimpl
def zoo_result(record):
    path = os.environ["ZOO_TEST_FILL"]
    if os.path.exists(path):
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 4096, 1):
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
