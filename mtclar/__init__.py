"""MT-CLAR: few-shot valence/arousal labelling of face videos.

One installed package: ``mtclar.model`` (folder ``model/``), ``mtclar.training`` (``training/``), the command
line (``mtclar.cli``, ``mtclar.commands``) and the settings; ``mtclar_backend`` is the Label Studio side.
"""

__version__ = "0.1.0"
