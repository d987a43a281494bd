"""The paper's published numbers (PAPER_SPEC.md section 5), shown beside ours in every table.

One home for them: evaluation modules and the report read these, never re-type them.
Accuracies are fractions in [0, 1].
"""

from __future__ import annotations

#: Table 1: AVC accuracy on balanced test pairs (chance 0.5).
AVC = {
    "flickr_soundnet": {"L3-Net": 0.78},
    "kinetics_sounds": {"Supervised direct": 0.65, "Supervised pretraining": 0.74, "L3-Net": 0.74},
}
AVC_CHANCE = 0.5

#: Table 2: sound classification accuracy.
SOUND = {
    "esc50": {
        "SVM-MFCC": 0.396,
        "Autoencoder": 0.399,
        "Random Forest": 0.443,
        "Piczak ConvNet": 0.645,
        "SoundNet": 0.742,
        "L3 random weights": 0.625,
        "L3-Net": 0.793,
        "Human": 0.813,
    },
    "dcase2013": {
        "RG": 0.69,
        "LTT": 0.72,
        "RNH": 0.77,
        "Ensemble": 0.78,
        "SoundNet": 0.88,
        "L3 random weights": 0.85,
        "L3-Net": 0.93,
    },
}

#: Table 3: ImageNet linear probe on conv4_2 (top-1).
IMAGE_PROBE = {
    "L3-Net": 0.323,
    "L3 random weights": 0.129,
    "Random AlexNet": 0.183,
    "Self-supervised AlexNets (range low)": 0.223,
    "Self-supervised AlexNets (range high)": 0.347,
    "L3 architecture trained supervised": 0.592,
}

#: Table 4: NMI of k-means (64 clusters) against Kinetics-Sounds labels.
CLUSTER_NMI = {
    "random assignment": {"vision": 0.165, "audio": 0.165},
    "L3 without training": {"vision": 0.204, "audio": 0.219},
    "L3-Net": {"vision": 0.409, "audio": 0.330},
}
CLUSTER_K = 64

#: Section 3.5.3: classes (of 34) with a high-preference pool4 unit, by threshold (of top 5).
UNIT_CLASSES = {
    4: {"trained": {"vision": 10, "audio": 11}, "random": {"vision": 1, "audio": 1}},
    3: {"trained": {"vision": 23, "audio": 20}, "random": {"vision": 4, "audio": 3}},
}
UNIT_TOP_K = 5

# ------------------------------------------------------------------------------------------------
# what each number is
# ------------------------------------------------------------------------------------------------
#: A number the paper measured itself: its networks, its protocol (PAPER_SPEC section 5).
OWN = "the paper's own result (its protocol)"
#: Numbers of other works that the paper's tables quote, by protocol and row: each was computed with
#: its authors' own features, classifier and protocol, not the paper's, and not l3net's recipe.
QUOTED = {
    "sound": {
        "SVM-MFCC": "quoted: Piczak's published ESC-50 baseline (MFCC features, SVM, his clip-level protocol); "
        "not our MFCC recipe",
        "Autoencoder": "quoted: another work's published result (its own recipe)",
        "Random Forest": "quoted: Piczak's published ESC-50 baseline (MFCC features, random forest)",
        "Piczak ConvNet": "quoted: Piczak's published ConvNet trained on ESC-50 (supervised)",
        "SoundNet": "quoted: SoundNet's published result (Aytar et al.)",
        "Human": "quoted: Piczak's published human accuracy on ESC-50",
        "RG": "quoted: a DCASE 2013 challenge entry's published result",
        "LTT": "quoted: a DCASE 2013 challenge entry's published result",
        "RNH": "quoted: a DCASE 2013 challenge entry's published result",
        "Ensemble": "quoted: a DCASE 2013 challenge entry's published result",
    },
    "probe": {
        "Random AlexNet": "quoted: other works' AlexNet (another architecture) with random weights",
        "Self-supervised AlexNets (range low)": "quoted: other works' self-supervised AlexNets (another architecture)",
        "Self-supervised AlexNets (range high)": "quoted: other works' self-supervised AlexNets (another architecture)",
    },
}
#: The column that says, beside a "paper" column, what each of its numbers is.
SOURCE_COLUMN = "paper's number is"


def source(protocol: str, method: str, value: object = 0.0) -> str | None:
    """What the paper's number for ``method`` in ``protocol``'s table is: a quoted published result of
    another work (:data:`QUOTED`) or the paper's own (:data:`OWN`); None where the paper has no number
    (``value`` None)."""
    if value is None:
        return None
    return QUOTED.get(protocol, {}).get(method, OWN)
