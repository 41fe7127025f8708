"""SGD / ASGD / NT-ASGD (Algorithm 1 with the authors' condition)."""
import pytest
import torch

from awd.optim import NTASGD, first_trigger


def observe_all(values, nonmono=5):
    opt = NTASGD([torch.zeros(1, requires_grad=True)], lr=1.0, mode="ntasgd", nonmono=nonmono)
    return [opt.observe(v) for v in values], opt


def test_trigger_comes_exactly_where_the_authors_condition_says():
    # best value 5.0 sits at index 1; values stay worse than it for n = 3 more checks.
    values = [6.0, 5.0, 5.5, 5.4, 5.3, 5.2, 5.1]
    fired, opt = observe_all(values, nonmono=3)
    # check i compares values[i] with min(values[:i-3]) once i > 3:
    # i=4: min([6.0]) -> 5.3 is better: wait; i=5: min([6.0, 5.0]) = 5.0 -> 5.2 > 5.0: trigger.
    assert fired == [False, False, False, False, False, True, False]
    assert opt.averaging


def test_no_trigger_on_a_steadily_improving_sequence():
    fired, opt = observe_all([10.0 - 0.1 * i for i in range(40)])
    assert not any(fired) and not opt.averaging


def test_condition_is_not_the_v1_typo():
    # Worse than the last n values but better than the best before them: the authors' condition waits.
    values = [5.0, 4.0, 3.0, 2.0, 1.0, 0.9, 0.8, 0.7, 0.95]
    fired, _ = observe_all(values, nonmono=3)
    # i=8: min(values[:5]) = 1.0 and 0.95 < 1.0 -> no trigger (the v1 text would have triggered: 0.95 > 0.7).
    assert not any(fired)


@pytest.mark.parametrize("values,n", [([6.0, 5.0, 5.5, 5.4, 5.3, 5.2, 5.1], 3), ([10.0 - 0.1 * i for i in range(40)], 5),
                                      ([5.0, 4.0, 3.0, 2.0, 1.0, 0.9, 0.8, 0.7, 0.95], 3), ([1.0, 2.0, 3.0], 1)])
def test_replaying_a_curve_finds_the_check_the_optimizer_fires_at(values, n):
    fired, _ = observe_all(values, nonmono=n)
    assert first_trigger(values, n) == (fired.index(True) + 1 if any(fired) else None)


def test_needs_more_than_n_logs():
    fired, _ = observe_all([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], nonmono=5)
    assert fired == [False] * 6 + [True]


def test_sgd_and_asgd_never_trigger():
    for mode in ("sgd", "asgd"):
        opt = NTASGD([torch.zeros(1, requires_grad=True)], lr=1.0, mode=mode, nonmono=1)
        assert not any(opt.observe(v) for v in [1.0, 2.0, 3.0, 4.0])
    assert NTASGD([torch.zeros(1, requires_grad=True)], lr=1.0, mode="asgd").averaging
    assert not NTASGD([torch.zeros(1, requires_grad=True)], lr=1.0, mode="sgd").averaging


def _run_steps(opt, p, grads):
    iterates = []
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        iterates.append(p.detach().clone())
    return iterates


def test_sgd_step_with_weight_decay():
    p = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = NTASGD([p], lr=0.5, weight_decay=0.1, mode="sgd")
    p.grad = torch.tensor([0.2, 0.4])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([1.0 - 0.5 * (0.2 + 0.1), -2.0 - 0.5 * (0.4 - 0.2)]))


def test_asgd_average_is_the_arithmetic_mean_of_the_iterates():
    torch.manual_seed(0)
    p = torch.zeros(4, requires_grad=True)
    opt = NTASGD([p], lr=0.3, mode="asgd")
    grads = torch.randn(7, 4).tolist()
    iterates = _run_steps(opt, p, grads)
    raw = p.detach().clone()
    with opt.averaged():
        torch.testing.assert_close(p.detach(), torch.stack(iterates).mean(0))
    assert torch.equal(p.detach(), raw), "the raw weights are restored exactly"


def test_ntasgd_averages_only_the_iterates_after_the_trigger():
    torch.manual_seed(0)
    p = torch.zeros(3, requires_grad=True)
    opt = NTASGD([p], lr=0.1, mode="ntasgd", nonmono=1)
    before = _run_steps(opt, p, torch.randn(4, 3).tolist())
    with opt.averaged():
        assert torch.equal(p.detach(), before[-1]), "no average before the trigger: a no-op"
    assert [opt.observe(v) for v in (1.0, 0.5, 0.6, 0.7)] == [False, False, False, True]
    assert opt.avg_start == 4
    after = _run_steps(opt, p, torch.randn(5, 3).tolist())
    raw = p.detach().clone()
    with opt.averaged():
        torch.testing.assert_close(p.detach(), torch.stack(after).mean(0))
    assert torch.equal(p.detach(), raw)


def test_state_dict_carries_logs_and_average():
    torch.manual_seed(0)
    p = torch.zeros(3, requires_grad=True)
    opt = NTASGD([p], lr=0.1, mode="asgd")
    _run_steps(opt, p, torch.randn(3, 3).tolist())
    opt.observe(2.0)
    q = p.detach().clone().requires_grad_(True)
    opt2 = NTASGD([q], lr=0.1, mode="ntasgd", nonmono=2)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.mode == "asgd" and opt2.logs == [2.0] and opt2.num_averaged == 3 and opt2.num_steps == 3
    grads = torch.randn(2, 3).tolist()
    _run_steps(opt, p, grads)
    _run_steps(opt2, q, grads)
    with opt.averaged(), opt2.averaged():
        torch.testing.assert_close(p.detach(), q.detach())


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="mode="):
        NTASGD([torch.zeros(1, requires_grad=True)], lr=1.0, mode="adam")
    with pytest.raises(ValueError):
        NTASGD([torch.zeros(1, requires_grad=True)], lr=0.0)
