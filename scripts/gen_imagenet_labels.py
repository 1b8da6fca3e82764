"""Write mobiledeploy/data/imagenet_labels.txt from timm's bundled ImageNet info (no download).

One label per line, class index order. Core ML classifier labels must be unique, so a description
shared by two synsets ("crane": the bird and the machine) gets its WordNet id appended.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "mobiledeploy" / "data" / "imagenet_labels.txt"


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k labels, made unique, from timm.data.ImageNetInfo."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    desc = [info.index_to_description(i) for i in range(info.num_classes())]
    count = Counter(desc)
    return [d if count[d] == 1 else f"{d} ({info.index_to_label_name(i)})" for i, d in enumerate(desc)]


if __name__ == "__main__":
    OUT.write_text("\n".join(imagenet_labels()) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
