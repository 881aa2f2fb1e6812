"""The media limits are data (models.json's ``media`` section), checked on load like the rest of the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from seedance_batch._data import data_path
from seedance_batch.errors import PriceFileError
from seedance_batch.expand.params import PARAMS, URLS
from seedance_batch.models import URL_FIELDS, MediaKind, load_catalog

MIB = 1 << 20


def bundled() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(data_path("models.json").read_text(encoding="utf-8"))
    return data


def written(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_bundled_limits_are_apidots_playground_ones() -> None:
    media = load_catalog().media
    shown = {field: (kind.name, kind.content_types, kind.max_bytes) for field, kind in media.fields.items()}
    assert shown == {
        "image_urls": ("image", ("image/jpeg", "image/png", "image/webp"), 10 * MIB),
        "reference_image_urls": ("image", ("image/jpeg", "image/png", "image/webp"), 10 * MIB),
        "reference_video_urls": ("video", ("video/*",), 50 * MIB),
        "reference_audio_urls": ("audio", ("audio/*",), 20 * MIB),
    }


def test_every_url_field_of_the_parameter_table_has_a_kind() -> None:
    assert tuple(p.name for p in PARAMS if p.kind == URLS) == URL_FIELDS
    assert set(bundled()["media"]["fields"]) == set(URL_FIELDS)


@pytest.mark.parametrize(("types", "media_type", "fits"), [
    (("video/*",), "video/quicktime", True), (("video/*",), "audio/mpeg", False),
    (("image/png",), "image/png", True), (("image/png",), "image/pngx", False), (("image/png",), "image/*", False),
])
def test_a_kind_accepts_its_types_and_wildcards(types: tuple[str, ...], media_type: str, fits: bool) -> None:
    assert MediaKind("k", types, MIB).accepts(media_type) is fits


def test_a_price_file_without_a_media_section_gets_the_bundled_one(tmp_path: Path) -> None:
    data = bundled()
    del data["media"]
    assert load_catalog(written(tmp_path, data)).media == load_catalog().media


def test_a_user_may_widen_a_kind_in_their_own_copy(tmp_path: Path) -> None:
    data = bundled()
    data["media"]["kinds"]["image"] = {"content_types": ["image/*"], "max_mib": 30}
    media = load_catalog(written(tmp_path, data)).media
    kind = media.kind_of("image_urls")
    assert kind is not None and kind.accepts("image/gif") and kind.max_bytes == 30 * MIB


@pytest.mark.parametrize(("change", "said"), [
    (lambda m: m["fields"].update(image_url="image"),
     "prices.json: media.fields.image_url: 'image_url' is not a URL field of the request; URL fields: image_urls, "
     "reference_image_urls, reference_video_urls, reference_audio_urls"),
    (lambda m: m["fields"].update(image_urls="picture"),
     "prices.json: media.fields.image_urls: kind 'picture' is not described under media.kinds; kinds: image, video, "
     "audio"),
    (lambda m: m["fields"].pop("reference_audio_urls"),
     "prices.json: media.fields: reference_audio_urls has no media kind; every URL field needs one, or its URLs "
     "would go unchecked"),
    (lambda m: m["kinds"]["video"].update(content_types=["video"]),
     "prices.json: media.kinds.video.content_types[0]: 'video' does not match "
     "'^[a-z0-9][a-z0-9.+-]*/([a-z0-9][a-z0-9.+-]*|\\\\*)$'"),
    (lambda m: m["kinds"]["audio"].update(max_mib=0),
     "prices.json: media.kinds.audio.max_mib: 0 is less than or equal to the minimum of 0"),
])
def test_a_bad_media_section_is_one_line_naming_where(tmp_path: Path, change: Any, said: str) -> None:
    data = bundled()
    change(data["media"])
    path = written(tmp_path, data)
    with pytest.raises(PriceFileError) as caught:
        load_catalog(path)
    assert caught.value.format() == said.replace("prices.json", str(path), 1)
