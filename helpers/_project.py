"""The one place that names the project's repository, version and Colab install line.

Every notebook's first code cell is generated from :func:`colab_install_cell`;
``tests/test_notebook_structure.py`` checks that they all match it, and
``python dev.py sync-notebooks`` rewrites them after a change here.
"""

__version__ = "0.1.0"

#: Where the course lives. Colab installs ``helpers`` from here.
REPO_URL = "https://github.com/video-text-course/video-text-course"
#: The git ref Colab installs (a tag, so a notebook keeps working after main moves on).
REPO_REF = "v" + __version__
#: Distribution name of the ``helpers`` package (see pyproject.toml).
DIST_NAME = "video-text-course"

#: The Colab runtime the install cell was written against. Colab preinstalls TensorFlow,
#: tf-keras, tensorflow-hub and JAX; the cell adds only what is missing and never
#: reinstalls TensorFlow, so no runtime restart is needed.
COLAB_WRITTEN_AGAINST = "Colab runtime of late 2026 (Python 3.12, TensorFlow 2.19+, JAX 0.5+)"


def colab_install_cell():
    """Return the source of the guarded install cell every notebook starts with."""
    return (
        "# Colab only: install the course's `helpers` package (and the few libraries Colab lacks).\n"
        "# Locally, `python dev.py course` (see README) has installed everything already.\n"
        f"# Written against the {COLAB_WRITTEN_AGAINST}.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install -q "{DIST_NAME}[colab] @ git+{REPO_URL}@{REPO_REF}"'
    )
