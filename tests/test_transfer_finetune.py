"""Fine-tuning: checkpoint compatibility, fixed encoder, alignment phase, inductive items."""
from __future__ import annotations

import pytest
import torch

from transfer_data import small_pretrain_config, tiny_domain
from vqrec_fast.models import VQRec
from vqrec_fast.train import TrainConfig, checkpoint
from vqrec_fast.transfer.alignment import PermutationAlignment
from vqrec_fast.transfer.finetune import FinetuneOptions, add_items, finetune, load_pretrained_weights
from vqrec_fast.transfer.pretrain import MODEL_KEYS, load_pretrained, pretrain


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pt")
    cfg = small_pretrain_config(str(out), codes="opq", text_encoder="hash", epochs=2)
    pretrain(cfg, [tiny_domain("a", 40, 60, 0), tiny_domain("b", 30, 50, 1)], log=lambda *_: None)
    return out / "pretrained.pt"


def _train_cfg(out, **kw):
    base = dict(out=str(out), text_encoder="hash", num_subspaces=4, codebook_size=16, hidden=16, inner=32, epochs=2,
                patience=5, batch_size=64, max_len=8, threads=1, progress=False, plot=False, loss_impl="dense",
                topk_impl="dense")
    base.update(kw)
    return TrainConfig(**base)


def test_checkpoint_loads_into_a_target_model_and_write_back_permutes(pretrained):
    st = load_pretrained(pretrained)
    pc = st["config"]
    codes = torch.randint(0, 16, (26, 4), dtype=torch.uint8)
    model = VQRec(codes, codebook_size=16, loss_impl="dense", topk_impl="dense", **{k: pc[k] for k in MODEL_KEYS})
    load_pretrained_weights(model, st["model"])
    for k, v in st["model"].items():
        if k != "codes.item_codes":
            assert torch.equal(model.state_dict()[k], v), k
    assert torch.equal(model.codes.item_codes, codes)  # the target's own codes are kept
    al = PermutationAlignment(4, 16, mode="random", seed=5)
    P = al.current_hard_permutation()
    al.write_back(model.codes.weight.data)
    torch.testing.assert_close(model.codes.weight.data, torch.bmm(P, st["model"]["codes.weight"]))
    bad = VQRec(codes, codebook_size=16, hidden=24, n_heads=2, inner=32, max_len=8)
    with pytest.raises(ValueError, match="shape"):
        load_pretrained_weights(bad, st["model"])


def test_finetune_fixed_encoder_and_alignment_phase(pretrained, tmp_path):
    st = load_pretrained(pretrained)
    ds = tiny_domain("c", 25, 60, 2)
    res = finetune(_train_cfg(tmp_path / "ft"), ds,
                   FinetuneOptions(pretrained=str(pretrained), align="learned", align_epochs=2), log=lambda *_: None)
    assert len(res["align_losses"]) == 2 and res["epochs_run"] == 2
    best = checkpoint.load(tmp_path / "ft" / "best.pt")["model"]
    for k, v in st["model"].items():  # fixed encoder: Transformer and positions are the pre-trained ones
        if k.startswith(("encoder.", "position.")):
            assert torch.equal(best[k], v), k
    assert not torch.equal(best["codes.weight"], st["model"]["codes.weight"])  # code embeddings trained
    assert best["codes.item_codes"].shape == (26, 4)
    assert (tmp_path / "ft" / "quantizer.pt").exists()
    for k in ("recall@10", "ndcg@10"):
        assert 0.0 <= res["test"][k] <= 1.0


def test_unfrozen_encoder_trains(pretrained, tmp_path):
    st = load_pretrained(pretrained)
    res = finetune(_train_cfg(tmp_path / "ft", epochs=1), tiny_domain("c", 25, 60, 2),
                   FinetuneOptions(pretrained=str(pretrained), fix_encoder=False, align="none"), log=lambda *_: None)
    best = checkpoint.load(tmp_path / "ft" / "best.pt")["model"]
    assert not torch.equal(best["encoder.layers.0.qkv.weight"], st["model"]["encoder.layers.0.qkv.weight"])
    assert res["permutation_changed"] == 0.0


def test_items_unseen_in_training_are_recommendable_from_text(pretrained, tmp_path):
    ds = tiny_domain("c", 25, 60, 2)
    finetune(_train_cfg(tmp_path / "ft", epochs=1), ds, FinetuneOptions(pretrained=str(pretrained), align="none"),
             log=lambda *_: None)
    from vqrec_fast.train import load_trained

    model = load_trained(tmp_path / "ft")
    q = checkpoint.load(tmp_path / "ft" / "quantizer.pt")["quantizer"]
    hist = torch.tensor([[3, 5, 7]])
    q_out = model.forward_padded(hist)
    _, top = model.topk(q_out, 1)
    best_item = int(top[0, 0])
    # a brand-new item (no interactions, not in the code table) described by the best item's text
    # gets the same codes, hence the same score: it is recommended from its text alone
    new_ids = add_items(model, q, [ds.item_text[best_item], "completely unrelated words zzz"])
    assert new_ids.tolist() == [26, 27] and model.num_items == 27
    assert torch.equal(model.codes.item_codes[26], model.codes.item_codes[best_item])
    scores, top2 = model.topk(q_out, 2)
    assert set(top2[0].tolist()) == {best_item, 26}
    torch.testing.assert_close(scores[0, 0], scores[0, 1])
    # item i is row i - 1 of the catalogue: the new item's vector is the code bag of its text codes
    emb = model.item_matrix()
    torch.testing.assert_close(emb[25], model.codes(codes=model.codes.item_codes[26:27])[0])
    assert not torch.equal(emb[26], emb[25])


def test_unisrec_baseline_pretrains_and_finetunes_the_same_way(tmp_path):
    from vqrec_fast.transfer.finetune import load_run_model
    from vqrec_fast.transfer.unisrec import UniSRecText

    cfg = small_pretrain_config(str(tmp_path / "pt"), model="unisrec", text_encoder="hash", rho=0.75)
    res = pretrain(cfg, [tiny_domain("a", 40, 60, 0), tiny_domain("b", 30, 50, 1)], log=lambda *_: None)
    assert isinstance(res["model"], UniSRecText) and res["model"].plm.shape == (71, 256)
    st = load_pretrained(tmp_path / "pt" / "pretrained.pt")
    finetune(_train_cfg(tmp_path / "ft", epochs=1), tiny_domain("c", 25, 60, 2),
             FinetuneOptions(pretrained=str(tmp_path / "pt" / "pretrained.pt"), model="unisrec"), log=lambda *_: None)
    model = load_run_model(tmp_path / "ft")
    assert isinstance(model, UniSRecText) and model.plm.shape == (26, 256)  # the target's own text vectors
    best = model.state_dict()
    assert torch.equal(best["encoder.layers.1.ff1.weight"], st["model"]["encoder.layers.1.ff1.weight"])
    assert not torch.equal(best["adaptor.weight"], st["model"]["adaptor.weight"])


def test_subsample_train_keeps_a_fraction_of_a_loaded_dataset(tmp_path):
    """The data-fraction runs of the study subsample a dataset read by the atomic loader (whose
    per-example users once came as a list and broke the subset)."""
    import numpy as np

    from vqrec_fast.data import load_atomic
    from vqrec_fast.synthetic import write_atomic
    from vqrec_fast.transfer.finetune import subsample_train

    ds = load_atomic(write_atomic(tmp_path / "data", num_items=200, num_users=300))
    sub = subsample_train(ds, 0.25, seed=3)
    n = len(ds.train)
    assert len(sub.train) == round(0.25 * n) and sub.valid is ds.valid and sub.test is ds.test
    # every kept example is one of the originals, with its history, target and user
    orig = {(tuple(ds.train.history(e).tolist()), int(ds.train.targets[e]), int(ds.train.users[e])) for e in range(n)}
    for e in range(len(sub.train)):
        assert (tuple(sub.train.history(e).tolist()), int(sub.train.targets[e]), int(sub.train.users[e])) in orig
    assert isinstance(ds.train.users, np.ndarray)
