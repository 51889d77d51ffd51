"""The one place that names the project's repository, version, Colab badge and install line.

Every notebook's Colab badge comes from :func:`colab_badge_url` and its first code cell from
:func:`colab_install_cell`; both name the same revision, :data:`REPO_REF`.
``tests/test_notebook_structure.py`` checks that every notebook matches them,
``python3.11 dev.py sync-notebooks`` rewrites them after a change here, and
``python3.11 dev.py release X.Y.Z`` bumps the version, rewrites them, commits and creates the tag.
"""

__version__ = "0.1.0"

#: Where the course lives. Colab installs ``helpers`` from here.
REPO_URL = "https://github.com/video-text-course/video-text-course"
#: The git ref the Colab badge opens and the install cell installs: the release tag of this
#: version (made by ``dev.py release``), so a notebook opened from a badge installs the helpers
#: it was written with, and keeps working after main moves on.
REPO_REF = "v" + __version__
#: Distribution name of the ``helpers`` package (see pyproject.toml).
DIST_NAME = "video-text-course"

#: The Colab runtime the install cell was written against. Colab preinstalls TensorFlow,
#: tf-keras, tensorflow-hub and JAX; the cell adds only what is missing and never
#: reinstalls TensorFlow, so no runtime restart is needed.
#: ``dev.py test-colab`` runs every notebook on this runtime's package list
#: (tests/data/colab/); a test keeps the versions named here equal to that list's.
COLAB_WRITTEN_AGAINST = ("Colab runtime of August 2026 (Python 3.13, TensorFlow 2.20, tf-keras 2.20, "
                         "JAX 0.7.2, NumPy 2.1, IPython 7.34)")


def colab_badge_url(filename):
    """Where a notebook's Open-in-Colab badge points: the notebook at :data:`REPO_REF`."""
    repo = REPO_URL.split("github.com/", 1)[1]
    return f"https://colab.research.google.com/github/{repo}/blob/{REPO_REF}/notebooks/{filename}"


def colab_badge(filename):
    """The badge's markdown, as the first cell of every notebook shows it."""
    return ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_badge_url(filename)})")


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
