"""One small exception tree. Messages name the file, row, task or shape at fault."""


class MtclarError(Exception):
    """Base class for every error this project raises on purpose (bad input, missing files)."""


class MediaError(MtclarError):
    """A video or image is missing, empty, corrupt, unreachable or not a video."""


class WeightsError(MtclarError):
    """Encoder weights are missing or do not match the architecture."""


class CheckpointError(MtclarError):
    """A checkpoint is missing, corrupt, or was trained with another encoder."""


class AnchorError(MtclarError):
    """Anchors (labelled frames) are malformed: unknown video, frame out of range, bad values."""


class LabelConfigError(MtclarError):
    """A Label Studio labelling config lacks a tag or attribute the backend needs."""


class DataError(MtclarError):
    """A dataset, manifest or annotation file is malformed."""


class ConfigError(MtclarError, ValueError):
    """A setting, config file or registry name is unknown or out of range; the message names it."""


class PayloadError(MtclarError):
    """A request (from Label Studio or any caller) is malformed; the message names the field and the task."""


class PayloadTooLarge(PayloadError):
    """A request is over a configured limit (body size, tasks per request, frame numbers)."""
