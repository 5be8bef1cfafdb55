"""Large files over the importer's tus endpoint (`{base}/uploads`), resumed from the offset
the importer holds after a dropped connection, a timeout, or a crash of this process.

The upload URL is remembered in the database (`model.export.upload_urls`) as soon as the importer
creates it, so a later run asks the importer (HEAD) where it stands and sends only the rest.
Chunks carry no `Upload-Checksum`: the importer checks the whole file's MD5 on the last byte
anyway, and a per-chunk MD5 would cost one more hash pass on each side (the slowest step of
a large transfer). Without a checksum the importer keeps every byte that arrived, so a cut
connection loses only what was in flight. A chunk's bytes go from the file to the socket
with sendfile(2) (`exporter.sendfile`), not through this process.
"""

import base64
from dataclasses import dataclass
from typing import BinaryIO, Callable
from urllib.parse import urljoin

from exporter import errors
from exporter.retry import keep_uploading
from exporter.sendfile import SpanBody
from exporter.transport import Transport
from model.export.upload_urls import UploadUrls

TUS = {"Tus-Resumable": "1.0.0"}


class UploadRefused(errors.FinalError):
    """The importer will not take these bytes (their MD5 is not the record's, the file is
    too large, the upload was refused): the entities that need the file fail."""


class UploadEnded(errors.RetryableError):
    """The link failed, and then the importer no longer knew the upload: it ended (the
    last bytes did arrive) or expired. The target's fault, as the link's failure was; the
    next run asks the importer whether it holds the file."""


@dataclass
class Resumable:
    transport: Transport
    uploads_url: str                  # absolute URL of {base}/uploads
    urls: UploadUrls
    target: str
    chunk_bytes: int

    def send(self, file_id: str, md5: str, size: int,
             open_stream: Callable[[], BinaryIO], sha256: str | None = None) -> None:
        """Upload the file until the importer holds all of it. Raises UploadRefused, or a
        RetryableError once the retry policy gives up on a link that makes no progress
        (`exporter.retry.keep_uploading`; the URL stays remembered for the next run).
        `sha256`, announced with the upload, lets an importer on an object store write the
        bytes under their final name from the first part."""
        url, offset = self._resume_or_create(file_id, md5, size, sha256)
        try:
            self._send_from(url, offset, size, open_stream)
        except (UploadRefused, UploadEnded):
            self.urls.forget(self.target, file_id, md5)     # the URL can serve no more
            raise
        self.urls.forget(self.target, file_id, md5)

    def _send_from(self, url: str, offset: int, size: int,
                   open_stream: Callable[[], BinaryIO]) -> None:
        stalls = 0
        with open_stream() as stream:
            while offset < size:
                try:
                    offset = self._patch(url, stream, offset, min(self.chunk_bytes,
                                                                  size - offset))
                    stalls = 0
                except errors.RetryableError as exc:
                    stalls += 1
                    held = self._offset(url)
                    if held is None:
                        raise UploadEnded(f"{exc}; the importer no longer knows the upload "
                                          "(finished or expired)") from None
                    if held > offset:
                        stalls = 0
                    elif not keep_uploading(stalls):
                        raise
                    offset = held

    # -- steps ------------------------------------------------------------------------------

    def _resume_or_create(self, file_id: str, md5: str, size: int,
                          sha256: str | None) -> tuple[str, int]:
        url = self.urls.get(self.target, file_id, md5)
        if url is not None:
            offset = self._offset(url)
            if offset is not None:
                return url, offset
            self.urls.forget(self.target, file_id, md5)   # expired or ended by the importer
        response = self.transport.send("POST", self.uploads_url, headers={
            **TUS, "Upload-Length": str(size),
            "Upload-Metadata": _metadata(file_id=file_id, md5=md5, sha256=sha256)})
        if response.status_code != 201 or "Location" not in response.headers:
            _refused(response, "creating the upload")
        url = urljoin(self.uploads_url, response.headers["Location"])
        self.urls.remember(self.target, file_id, md5, url)
        return url, 0

    def _offset(self, url: str) -> int | None:
        """The offset the importer holds, or None if it does not know the upload."""
        response = self.transport.send("HEAD", url, headers=TUS)
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            _refused(response, "asking for the offset")
        return _int(response.headers.get("Upload-Offset"), response)

    def _patch(self, url: str, stream: BinaryIO, offset: int, length: int) -> int:
        body = SpanBody(self.transport.span(stream, offset, length))
        response = self.transport.send("PATCH", url, data=body, headers={
            **TUS, "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream"})
        if response.status_code == 409:          # the importer holds another offset
            held = self._offset(url)
            if held is None:
                _refused(response, "sending a chunk")
            return held
        if response.status_code != 204:
            _refused(response, "sending a chunk")
        return _int(response.headers.get("Upload-Offset"), response)


def _metadata(**values: str | None) -> str:
    """tus Upload-Metadata: `key base64(value)` pairs, the values that are not None."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in values.items() if value is not None)


def _int(value, response) -> int:
    if value is None or not value.isdigit():
        raise errors.ProtocolError(f"protocol: no valid Upload-Offset in the answer "
                                   f"({response.status_code}) from {response.url}")
    return int(value)


def _refused(response, doing: str):
    """Translate an unexpected answer: retryable ones raise through the transport's rules,
    the rest refuse the file."""
    if response.status_code in (401, 403, 429) or response.status_code >= 500:
        from exporter.transport import check_response
        check_response(response)
    text = response.text.strip()[:200]
    raise UploadRefused(f"the importer refused the upload while {doing} "
                        f"({response.status_code}): {text}", response.status_code)
