"""Turn obstore's exceptions into :mod:`roboflow_storage.errors` with short, secret-free reasons."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotSupportedError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)

from roboflow_storage.errors import ObjectExistsError, ObjectNotFoundError, StorageError

_S3_CODE = re.compile(r"<Code>([^<]+)</Code>")
_MAX_DETAIL = 300
_BUCKET_HINTS = {
    "NoSuchBucket": "the bucket does not exist; create it or fix the bucket name",
    "AccessDenied": "permission denied; check the credentials and the bucket policy",
    "InvalidAccessKeyId": "the access key is not known to the endpoint; check the credentials",
    "SignatureDoesNotMatch": "the secret key does not match the access key; check the credentials",
}


def _detail(err: BaseException, secrets: Collection[str]) -> str:
    """The first line of an obstore error, trimmed, with any secret value removed."""
    head, _, body = str(err).split("\n\nDebug source:")[0].partition("<?xml")
    text = " ".join(head.split()).rstrip(": ")
    codes = _S3_CODE.findall(body)
    if codes:
        text += f" ({', '.join(codes)})"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _reason(err: BaseException, action: str, detail: str) -> tuple[str, bool]:
    """The reason of a failed request and whether retrying it later can help."""
    for code in _S3_CODE.findall(str(err)):
        if code in _BUCKET_HINTS:
            return f"{action} failed: {_BUCKET_HINTS[code]} ({detail})", False
    if isinstance(err, PermissionDeniedError | UnauthenticatedError):
        return f"{action} failed: permission denied; check the credentials ({detail})", False
    if "error sending request" in detail or "Connect" in str(err):
        return (
            f"{action} failed: cannot reach the endpoint; check the endpoint URL and network ({detail})",
            True,
        )
    if isinstance(err, NotSupportedError):
        return f"{action} is not supported by this store ({detail})", False
    return f"{action} failed: {detail}", not isinstance(err, ValueError)


@contextmanager
def translate_errors(url: str, action: str, secrets: Collection[str] = ()) -> Iterator[None]:
    """Re-raise obstore and OS errors from the block as storage errors naming ``url``.

    Args:
        url: The URL shown in the error (never carries credentials).
        action: What was being done, e.g. ``"get"``; starts the reason.
        secrets: Values to blank out of the reason should a server echo them.

    Raises:
        ObjectNotFoundError: The object does not exist (a missing bucket is a plain StorageError).
        ObjectExistsError: A create-only put found an existing object.
        StorageError: Any other failure, with a reason that names the likely cause; transient
            unless retrying cannot help (refused credentials, a missing bucket, a bad setting).
    """
    try:
        yield
    except (AlreadyExistsError, PreconditionError) as err:
        raise ObjectExistsError(f"{action} failed: an object already exists", url=url) from err
    except FileNotFoundError as err:
        detail = _detail(err, secrets)
        if "NoSuchBucket" in str(err):
            reason, transient = _reason(err, action, detail)
            raise StorageError(reason, transient=transient, url=url) from err
        raise ObjectNotFoundError(f"{action} failed: no such object", url=url) from err
    except (BaseError, OSError, ValueError) as err:
        reason, transient = _reason(err, action, _detail(err, secrets))
        raise StorageError(reason, transient=transient, url=url) from err
