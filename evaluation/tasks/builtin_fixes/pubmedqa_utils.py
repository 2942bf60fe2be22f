"""PubMedQA over qiaojin/PubMedQA's schema (pubid, question, context{contexts, ...},
final_decision), with lm-eval's pubmedqa prompt."""

from pathlib import Path

# The official test set: the 500 PubMed ids of data/test_ground_truth.json in
# github.com/pubmedqa/pubmedqa (commit 1cbae8e92f72f20c8d3747cbb3bf5bc53554d997).
TEST_PUBIDS = frozenset(Path(__file__).with_name("pubmedqa_test_pubids.txt").read_text().split())


def official_test_set(dataset):
    return dataset.filter(lambda doc: str(doc["pubid"]) in TEST_PUBIDS)


def doc_to_text(doc) -> str:
    contexts = "\n".join(doc["context"]["contexts"])
    return f"Abstract: {contexts}\nQuestion: {doc['question']}\nAnswer:"
