"""Build assets/sample/ (the smoke-sized training sample) from ../shared/data: `python .ci/make_sample.py`.

24 photos and 24 paintings, shorter side 256 px (never upscaled), JPEG quality 88, with provenance and licence per
file in assets/sample/SOURCES.csv (copied from shared/data/MANIFEST.csv). The held-out images named in the shipped
models' recipes (assets/MANIFEST.json) are included, so train_realtime.ipynb and train_cyclegan.ipynb can show and
evaluate the shipped models on the sample; the rest prefers CC0 / public domain / CC-BY files. Never reads
shared/data/reference.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "assets" / "sample"
SHORTER_SIDE, QUALITY = 256, 88

# Chosen by hand: open licences first (CC0, public domain, CC-BY), varied subjects.
EXTRA_PHOTOS = [
    "gcompris-clickgame_sea2.jpg", "gcompris-erase_crab.jpg", "gcompris-farmanimals_horse.jpg",
    "gcompris-monuments_machuPicchu.jpg", "gcompris-monuments_montStMichel.jpg", "gcompris-worldanimals_jaguar.jpg",
    "gcompris-worldmusic_mexico.jpg", "lomiri-16.04_seeding_by_Clements_Engelhardt.jpg",
    "gcompris-monuments_neuschwansteinCastle.jpg", "palapeli_citrus-fruits.jpg", "skimage_coffee.jpg",
    "gcompris-worldanimals_scarlet_macaw.jpg", "gcompris-monuments_greatWallofChina.jpg",
]
EXTRA_PAINTINGS_COUNT = 24


def licence(row: dict[str, str]) -> str:
    return row["license_as_stated"].lower()


def painting_rank(row: dict[str, str]) -> int:
    """Lower is more open: public domain, then permissive, then copyleft."""
    text = licence(row)
    if text.startswith("public domain") or text.startswith("cc0"):
        return 0
    if text.startswith("apache") or text.startswith("cc-by"):
        return 1
    return 2 if "gpl-3" in text else 3


def main() -> None:
    rows = {r["file"]: r for r in csv.DictReader(open(SHARED / "MANIFEST.csv", newline=""))}
    manifest = json.loads((ROOT / "assets" / "MANIFEST.json").read_text())
    gan_data = manifest["cyclegan_photo2painting.pth"]["recipe"]["data"]
    realtime_held_out = manifest["realtime_4styles.pth"]["recipe"]["held_out"][:3]  # the notebook shows 3
    photos = list(dict.fromkeys(realtime_held_out + gan_data["held_out_photos"] + EXTRA_PHOTOS))[:24]
    paintings = list(gan_data["held_out_paintings"])
    candidates = sorted((r for f, r in rows.items() if f.startswith("paintings/")),
                        key=lambda r: (painting_rank(r), r["file"]))
    for row in candidates:
        name = row["file"].split("/", 1)[1]
        if len(paintings) < EXTRA_PAINTINGS_COUNT and name not in paintings:
            paintings.append(name)
    records = []
    for domain, names in (("photos", photos), ("paintings", paintings)):
        (SAMPLE / domain).mkdir(parents=True, exist_ok=True)
        for name in names:
            row = rows[f"{domain}/{name}"]
            image = Image.open(SHARED / domain / name).convert("RGB")
            scale = min(1.0, SHORTER_SIDE / min(image.size))
            size = (round(image.width * scale), round(image.height * scale))
            image.resize(size, Image.LANCZOS).save(SAMPLE / domain / name, quality=QUALITY, optimize=True)
            records.append({"file": f"{domain}/{name}", "width": size[0], "height": size[1],
                            "original_width": row["width"], "original_height": row["height"],
                            "source_registry": row["source_registry"], "source_package": row["source_package"],
                            "package_version": row["package_version"], "original_path": row["original_path"],
                            "license_as_stated": row["license_as_stated"]})
    with open(SAMPLE / "SOURCES.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    print(f"{len(photos)} photos, {len(paintings)} paintings -> {SAMPLE}")


if __name__ == "__main__":
    main()
