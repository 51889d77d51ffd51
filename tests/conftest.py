"""Shared test set-up: tiny mode and throw-away caches unless the runner chose its own."""

import os
import tempfile

# Set before any test module imports helpers, so nothing touches a user's real caches.
os.environ.setdefault("COURSE_MODE", "tiny")
if "COURSE_CACHE_DIR" not in os.environ:
    os.environ["COURSE_CACHE_DIR"] = tempfile.mkdtemp(prefix="course-test-cache-")
os.environ.setdefault("COURSE_DATA_DIR", os.path.join(os.environ["COURSE_CACHE_DIR"], "data"))

