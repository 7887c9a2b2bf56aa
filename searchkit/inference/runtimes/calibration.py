"""A bundled sample of texts to calibrate static int8 quantization, so it needs no hub data set.

Varied in topic, register and length (short queries to abstract-length passages), because the
activation ranges NNCF records decide what int8 can represent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUERIES = (
    "how do vaccines protect against disease",
    "statins lower the risk of heart attack",
    "what causes high and low tide",
    "reset a forgotten password",
    "p53 mutations are common in human cancers",
    "best way to brew espresso at home",
    "does vitamin D supplementation reduce fractures in older adults",
    "python sort a list of dictionaries by a key",
    "effect of sleep deprivation on memory consolidation",
    "why is the sky blue",
    "antibiotic resistance spreads through horizontal gene transfer",
    "tax rules for selling a house",
)
PASSAGES = (
    "A vaccine trains the immune system to recognise a pathogen by exposing it to a harmless "
    "antigen, so antibodies and memory cells are ready before a real infection.",
    "In a randomized controlled trial of 4,159 patients with hypercholesterolemia, statin therapy "
    "reduced major coronary events by 24% over five years compared with placebo. The benefit was "
    "consistent across subgroups defined by age, sex and baseline LDL cholesterol, and adverse "
    "events, including myopathy and liver enzyme elevation, were rare in both arms.",
    "Tides are the regular rise and fall of sea level caused by the gravitational pull of the "
    "Moon and the Sun acting on the rotating Earth.",
    "To reset your password, open Settings, choose Account, then Security, and follow the link "
    "sent to your e-mail address. The link expires after 24 hours.",
    "The tumour suppressor p53 is mutated in roughly half of all human cancers. Loss of p53 "
    "function impairs cell-cycle arrest and apoptosis after DNA damage, allowing cells with "
    "genomic instability to proliferate. Mouse models lacking Trp53 develop lymphomas and "
    "sarcomas early in life, and restoring p53 expression causes regression of established "
    "tumours in several of these models.",
    "Espresso is brewed by forcing hot water at about nine bars through finely ground, tightly "
    "packed coffee; a shot takes 25 to 30 seconds.",
    "We performed a meta-analysis of 33 randomized trials including 51,145 community-dwelling "
    "adults older than 50 years. Supplementation with vitamin D, alone or with calcium, was not "
    "associated with a lower incidence of hip fractures, non-vertebral fractures or total "
    "fractures. These findings do not support the routine use of these supplements.",
    "sorted(rows, key=lambda row: row['name']) returns a new list ordered by each dictionary's "
    "name; list.sort(key=...) sorts in place.",
    "Sleep after learning strengthens declarative memories. Participants deprived of sleep for "
    "one night recalled 40% fewer word pairs than rested controls, and functional MRI showed "
    "reduced hippocampal activation during encoding on the following day.",
    "Rayleigh scattering by nitrogen and oxygen molecules affects short wavelengths far more "
    "than long ones, so scattered sunlight reaching the eye from every direction looks blue.",
    "Plasmids carrying beta-lactamase genes move between Enterobacteriaceae by conjugation. "
    "Whole-genome sequencing of 1,200 clinical isolates from 14 hospitals traced carbapenem "
    "resistance to a small number of plasmid lineages that crossed species boundaries repeatedly.",
    "When you sell your main home you may not owe tax on the gain if you lived in it for two of "
    "the last five years.",
    "Bitcoin is a decentralised digital currency whose transactions are recorded on a public "
    "blockchain by miners who are rewarded with newly created coins.",
    "Mitochondria generate most of the cell's ATP through oxidative phosphorylation; mutations "
    "in mitochondrial DNA cause disorders that mainly affect muscle and nerve tissue.",
    "The committee approved the budget on Tuesday after a three-hour debate.",
    "Chronic inflammation in adipose tissue is associated with insulin resistance. Macrophages "
    "infiltrating fat depots of obese mice secrete TNF-alpha and IL-6, which interfere with "
    "insulin receptor signalling; deleting the macrophage receptor CCR2 reduced infiltration and "
    "improved glucose tolerance without changing body weight.",
)


def calibration_inputs(transformer: Any, role: str, names: list[str]) -> list[dict[str, Any]]:
    """Tokenized samples (one text or pair each) as the model's inputs: numpy int64 arrays."""
    if role == "reranker":
        texts: list[Any] = [
            (q, PASSAGES[(n * 5 + j) % len(PASSAGES)])
            for n, q in enumerate(QUERIES)
            for j in range(3)
        ]
    else:
        texts = [*QUERIES, *PASSAGES]
    tokenizer = transformer.tokenizer
    limit = transformer.max_seq_length or 512
    samples = []
    for text in texts:
        pair = text if isinstance(text, tuple) else (text,)
        made = tokenizer(*pair, truncation=True, max_length=limit, return_tensors="np")
        samples.append({name: np.asarray(made[name], dtype=np.int64) for name in names})
    return samples
