"""Tests of the ES core (esrepro.es): shared noise table, centered ranks, Adam, observation
statistics and the OpenAI-ES strategy (ask / gradient / tell).

Every expected value is computed independently in the test (by hand, or by an explicit float64
loop written out from the paper / reference-code formulas in docs/paper.md), never by
re-running the function under test.
"""

import numpy as np
import pytest

from esrepro.es.adam import Adam
from esrepro.es.noise import NoiseTable
from esrepro.es.obstat import ObsStats
from esrepro.es.ranks import centered_ranks
from esrepro.es.strategy import OpenES, ask, eval_env_seed

# --------------------------------------------------------------------------------------------
# NoiseTable
# --------------------------------------------------------------------------------------------

def test_noise_table_same_seed_identical_different_seed_different():
    a = NoiseTable(10_000, seed=123)
    b = NoiseTable(10_000, seed=123)
    c = NoiseTable(10_000, seed=124)
    assert a.noise.dtype == np.float32
    assert a.noise.shape == (10_000,)
    np.testing.assert_array_equal(a.noise, b.noise)
    # Different seeds: essentially every value differs.
    assert np.mean(a.noise != c.noise) > 0.99


def test_noise_table_matches_documented_generator():
    # Documented contract (noise.py Notes): default_rng(seed).standard_normal(size, float32).
    # Workers and checkpoints rely on this being reproducible across machines.
    table = NoiseTable(5_000, seed=7)
    expected = np.random.default_rng(7).standard_normal(5_000, dtype=np.float32)
    np.testing.assert_array_equal(table.noise, expected)


def test_noise_get_is_exact_read_only_slice():
    table = NoiseTable(1_000, seed=3)
    full = np.array(table.noise)  # independent copy
    for index, dim in [(0, 1), (0, 17), (123, 50), (1_000 - 40, 40), (999, 1), (0, 1_000)]:
        eps = table.get(index, dim)
        assert eps.shape == (dim,)
        assert eps.dtype == np.float32
        np.testing.assert_array_equal(eps, full[index:index + dim])
        assert not eps.flags.writeable
        with pytest.raises(ValueError):
            eps[0] = 1.0
    # The table itself is read-only too, so no worker can corrupt the shared noise.
    with pytest.raises(ValueError):
        table.noise[0] = 1.0
    np.testing.assert_array_equal(table.noise, full)


@pytest.mark.parametrize("index, dim", [(-1, 5), (996, 5), (1_000, 1), (0, 1_001), (-10, 3)])
def test_noise_get_out_of_range_raises(index, dim):
    table = NoiseTable(1_000, seed=3)
    with pytest.raises(IndexError):
        table.get(index, dim)


def test_noise_get_last_valid_start():
    table = NoiseTable(1_000, seed=3)
    np.testing.assert_array_equal(table.get(995, 5), np.array(table.noise)[995:1_000])


def test_noise_sample_index_within_bounds_and_covers_both_ends():
    table = NoiseTable(10, seed=0)
    rng = np.random.default_rng(0)
    draws = np.array([table.sample_index(rng, 7) for _ in range(2_000)])
    assert draws.min() >= 0 and draws.max() <= 10 - 7
    # All 4 valid starts {0, 1, 2, 3} are reached (uniform: each ~500 of 2000).
    assert set(draws.tolist()) == {0, 1, 2, 3}
    counts = np.bincount(draws, minlength=4)
    assert np.all(np.abs(counts - 500) < 120)
    # Every sampled index gives a valid slice.
    for i in set(draws.tolist()):
        assert table.get(i, 7).shape == (7,)


def test_noise_sample_index_large_table_bounds():
    table = NoiseTable(100_000, seed=0)
    rng = np.random.default_rng(1)
    dim = 99_000
    draws = np.array([table.sample_index(rng, dim) for _ in range(5_000)])
    assert draws.min() >= 0 and draws.max() <= 100_000 - dim
    assert draws.min() == 0 and draws.max() == 100_000 - dim


def test_noise_sample_index_size_equal_dim_is_zero():
    table = NoiseTable(25, seed=0)
    rng = np.random.default_rng(5)
    assert all(table.sample_index(rng, 25) == 0 for _ in range(100))


def test_noise_sample_index_dim_larger_than_table_raises():
    table = NoiseTable(25, seed=0)
    with pytest.raises(ValueError):
        table.sample_index(np.random.default_rng(0), 26)


def test_noise_values_roughly_standard_normal():
    noise = np.array(NoiseTable(1_000_000, seed=123).noise, dtype=np.float64)
    # Standard errors: mean 0.001, std ~0.0007.
    assert abs(noise.mean()) < 0.005
    assert abs(noise.std() - 1.0) < 0.005
    # Tails of a normal: P(|x| > 1) = 0.3173, P(|x| > 2) = 0.0455.
    assert abs(np.mean(np.abs(noise) > 1.0) - 0.3173) < 0.003
    assert abs(np.mean(np.abs(noise) > 2.0) - 0.0455) < 0.002


@pytest.mark.parametrize("size", [0, -1, -100])
def test_noise_nonpositive_size_raises(size):
    with pytest.raises(ValueError):
        NoiseTable(size, seed=0)


# --------------------------------------------------------------------------------------------
# centered_ranks
# --------------------------------------------------------------------------------------------

def test_centered_ranks_hand_computed_1d():
    np.testing.assert_allclose(centered_ranks(np.array([3.0, 1.0, 2.0])), [0.5, -0.5, 0.0])
    # ranks [0, 4, 1, 3, 2] / 4 - 0.5
    np.testing.assert_allclose(centered_ranks(np.array([-10.0, 7.5, -3.0, 2.0, 0.0])),
                               [-0.5, 0.5, -0.25, 0.25, 0.0], atol=1e-7)
    np.testing.assert_allclose(centered_ranks(np.array([5.0, -5.0])), [0.5, -0.5])


def test_centered_ranks_antithetic_pairs_ranked_jointly():
    returns = np.array([[1.0, 5.0],
                        [3.0, -2.0]])
    # C-order values [1, 5, 3, -2] -> ranks [1, 3, 2, 0] -> / 3 - 0.5
    expected = np.array([[1 / 3 - 0.5, 0.5],
                         [2 / 3 - 0.5, -0.5]])
    out = centered_ranks(returns)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out, expected, atol=1e-7)

    # A column-wise (per-sign) ranking would give [[-0.5, 0.5], [0.5, -0.5]]; joint must not.
    returns = np.array([[10.0, 11.0],
                        [0.0, 1.0],
                        [5.0, 20.0]])
    # values [10, 11, 0, 1, 5, 20] -> ranks [3, 4, 0, 1, 2, 5] -> / 5 - 0.5
    expected = np.array([[0.1, 0.3], [-0.5, -0.3], [-0.1, 0.5]])
    np.testing.assert_allclose(centered_ranks(returns), expected, atol=1e-7)


def test_centered_ranks_ties_distinct_in_c_order():
    # values [2, 1, 2, 2]: sorted stably 1(i1), 2(i0), 2(i2), 2(i3) -> ranks [1, 0, 2, 3]
    np.testing.assert_allclose(centered_ranks(np.array([2.0, 1.0, 2.0, 2.0])),
                               [1 / 3 - 0.5, -0.5, 2 / 3 - 0.5, 0.5], atol=1e-7)
    # all equal, 2-D: ranks follow C order [[0, 1], [2, 3]]
    np.testing.assert_allclose(centered_ranks(np.full((2, 2), 7.0)),
                               [[-0.5, 1 / 3 - 0.5], [2 / 3 - 0.5, 0.5]], atol=1e-7)
    # ties across the antithetic columns: [[4, 4], [4, 0]] -> [4, 4, 4, 0] -> ranks [1, 2, 3, 0]
    np.testing.assert_allclose(centered_ranks(np.array([[4.0, 4.0], [4.0, 0.0]])),
                               [[1 / 3 - 0.5, 2 / 3 - 0.5], [0.5, -0.5]], atol=1e-7)


def test_centered_ranks_many_ties_match_loop():
    # Large enough that an unstable sort (numpy's default introsort) would reorder ties.
    rng = np.random.default_rng(8)
    returns = rng.integers(0, 4, size=(150, 2)).astype(np.float64)
    np.testing.assert_allclose(centered_ranks(returns), reference_ranks(returns), atol=1e-6)


def test_centered_ranks_of_permutation_are_the_permutation():
    rng = np.random.default_rng(0)
    n = 2 * 301
    perm = rng.permutation(n)
    returns = perm.reshape(-1, 2).astype(np.float64) * 3.7 - 100.0  # monotone transform
    out = centered_ranks(returns)
    np.testing.assert_allclose(out, (perm / (n - 1) - 0.5).reshape(-1, 2), atol=1e-6)


def test_centered_ranks_dtype_range_extremes():
    rng = np.random.default_rng(1)
    for x in [rng.standard_normal(57) * 1e6, rng.integers(-3, 3, size=(40, 2)),
              rng.standard_normal((13, 2)).astype(np.float32)]:
        out = centered_ranks(x)
        assert out.dtype == np.float32
        assert out.shape == np.shape(x)
        assert out.min() == np.float32(-0.5)
        assert out.max() == np.float32(0.5)
        assert np.all((out >= -0.5) & (out <= 0.5))
        # All ranks distinct (ties broken), evenly spaced.
        diffs = np.diff(np.sort(out.ravel().astype(np.float64)))
        np.testing.assert_allclose(diffs, 1.0 / (out.size - 1), rtol=1e-5)


def test_centered_ranks_does_not_modify_input():
    x = np.array([[3.0, 1.0], [2.0, 0.0]])
    x_copy = x.copy()
    centered_ranks(x)
    np.testing.assert_array_equal(x, x_copy)


@pytest.mark.parametrize("x", [np.array([]), np.array([5.0]), np.array([[5.0]])])
def test_centered_ranks_fewer_than_two_raises(x):
    with pytest.raises(ValueError):
        centered_ranks(x)


# --------------------------------------------------------------------------------------------
# Adam
# --------------------------------------------------------------------------------------------

def adam_reference(grads, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """The reference code's Adam written out in float64: returns the list of steps."""
    m = np.zeros_like(grads[0], dtype=np.float64)
    v = np.zeros_like(grads[0], dtype=np.float64)
    steps = []
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=np.float64)
        a = lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        steps.append(-a * m / (np.sqrt(v) + eps))
    return steps, m, v


def test_adam_matches_formula_several_steps():
    rng = np.random.default_rng(0)
    dim = 11
    grads = [rng.standard_normal(dim).astype(np.float32) * s for s in (1.0, 0.1, 3.0, 0.5, 1e-3, 2.0)]
    opt = Adam(dim, stepsize=0.03, beta1=0.8, beta2=0.99, epsilon=1e-6)
    expected, m_ref, v_ref = adam_reference(grads, lr=0.03, b1=0.8, b2=0.99, eps=1e-6)
    assert opt.t == 0
    for k, (g, exp) in enumerate(zip(grads, expected), start=1):
        step = opt.step(g)
        assert opt.t == k
        assert step.dtype == np.float32
        assert step.shape == (dim,)
        np.testing.assert_allclose(step, exp, rtol=2e-5, atol=1e-9)
    assert opt.m.dtype == np.float32 and opt.v.dtype == np.float32
    np.testing.assert_allclose(opt.m, m_ref, rtol=2e-5, atol=1e-9)
    np.testing.assert_allclose(opt.v, v_ref, rtol=2e-5, atol=1e-12)


def test_adam_paper_defaults_and_first_step_is_lr_times_sign():
    opt = Adam(4)
    assert (opt.stepsize, opt.beta1, opt.beta2, opt.epsilon) == (0.01, 0.9, 0.999, 1e-8)
    g = np.array([2.0, -0.5, 1e-2, -30.0], dtype=np.float32)
    step = opt.step(g)
    # t=1: a = lr sqrt(1-b2)/(1-b1), m = (1-b1) g, v = (1-b2) g^2 -> step = -lr sign(g) (eps aside)
    # (g = 1e-2 gives sqrt(v) = 3.2e-4, so epsilon = 1e-8 shows at the 3e-5 level)
    np.testing.assert_allclose(step, -0.01 * np.sign(g), rtol=1e-4)
    # A zero gradient gives a zero step (no division by zero).
    opt2 = Adam(3)
    np.testing.assert_array_equal(opt2.step(np.zeros(3, dtype=np.float32)), np.zeros(3))


def test_adam_many_steps_matches_formula():
    rng = np.random.default_rng(42)
    grads = [rng.standard_normal(5).astype(np.float32) for _ in range(200)]
    opt = Adam(5)
    expected, _, _ = adam_reference(grads)
    for g in grads:
        step = opt.step(g)
    assert opt.t == 200
    np.testing.assert_allclose(step, expected[-1], rtol=1e-4, atol=1e-9)


# --------------------------------------------------------------------------------------------
# ObsStats
# --------------------------------------------------------------------------------------------

def test_obsstats_initial_state():
    stats = ObsStats(3)
    # count 0.01, sum 0, sumsq 0.01 -> mean 0, var = 0.01/0.01 - 0 = 1 -> std 1
    np.testing.assert_array_equal(stats.mean, np.zeros(3, dtype=np.float32))
    np.testing.assert_allclose(stats.std, np.ones(3), rtol=1e-6)
    assert stats.mean.dtype == np.float32 and stats.std.dtype == np.float32


def test_obsstats_mean_std_after_increments():
    rng = np.random.default_rng(0)
    dim = 4
    batches = [rng.normal([1.0, -2.0, 0.0, 10.0], [0.5, 3.0, 1.0, 2.0], size=(n, dim))
               for n in (7, 1, 250, 40)]
    stats = ObsStats(dim)
    for b in batches:
        stats.increment(b.sum(axis=0), np.square(b).sum(axis=0), len(b))
    data = np.concatenate(batches)
    n = len(data)
    # Reference RunningStat: count starts at 0.01, sumsq at 0.01 per dimension.
    count = n + 0.01
    mean = data.sum(axis=0) / count
    var = (np.square(data).sum(axis=0) + 0.01) / count - mean ** 2
    std = np.sqrt(np.maximum(var, 0.01))
    np.testing.assert_allclose(stats.count, count)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stats.std, std, rtol=1e-5)
    # And, with ~300 observations, close to plain numpy statistics.
    np.testing.assert_allclose(stats.mean, data.mean(axis=0), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(stats.std, data.std(axis=0), rtol=1e-3)


def test_obsstats_std_floor_for_constant_data():
    stats = ObsStats(3)
    data = np.tile(np.array([3.0, -1.0, 0.0]), (100, 1))
    stats.increment(data.sum(axis=0), np.square(data).sum(axis=0), 100)
    np.testing.assert_allclose(stats.mean, np.array([3.0, -1.0, 0.0]) * 100 / 100.01, rtol=1e-6)
    np.testing.assert_allclose(stats.std, [0.1, 0.1, 0.1], rtol=1e-6)


# --------------------------------------------------------------------------------------------
# ask / eval_env_seed
# --------------------------------------------------------------------------------------------

@pytest.fixture
def small_table():
    """Built inside a test, after conftest points ESREPRO_NOISE_DIR at a temporary directory (at
    import time it would write the host's /dev/shm cache)."""
    return NoiseTable(10_000, seed=123)


def test_ask_deterministic(small_table):
    a = ask(5, 3, 17, small_table, 100, 0.5)
    b = ask(5, 3, 17, small_table, 100, 0.5)
    assert a.noise_index == b.noise_index
    assert a.env_seed == b.env_seed
    assert a.record_obs == b.record_obs
    for ra, rb in zip(a.action_rngs, b.action_rngs):
        np.testing.assert_array_equal(ra.standard_normal(20), rb.standard_normal(20))
    assert 0 <= a.noise_index <= small_table.size - 100
    assert isinstance(a.noise_index, int) and isinstance(a.env_seed, int)
    assert all(isinstance(r, bool) for r in a.record_obs)


def test_ask_positive_and_negative_action_streams_differ(small_table):
    p = ask(0, 0, 0, small_table, 10, 0.01)
    pos, neg = p.action_rngs
    assert not np.array_equal(pos.standard_normal(10), neg.standard_normal(10))


def test_ask_differs_across_pairs_and_iterations_and_seeds(small_table):
    dim = 50
    pairs = [ask(1, 0, k, small_table, dim, 0.01) for k in range(200)]
    assert len({p.env_seed for p in pairs}) == 200
    assert len({p.noise_index for p in pairs}) > 190  # 9951 possible starts
    for p in pairs:
        assert 0 <= p.noise_index <= small_table.size - dim
    other_iter = [ask(1, 1, k, small_table, dim, 0.01) for k in range(200)]
    assert all(p.env_seed != q.env_seed for p, q in zip(pairs, other_iter))
    assert {p.env_seed for p in pairs}.isdisjoint({q.env_seed for q in other_iter})
    other_seed = [ask(2, 0, k, small_table, dim, 0.01) for k in range(200)]
    assert {p.env_seed for p in pairs}.isdisjoint({q.env_seed for q in other_seed})
    # Action streams differ across pairs as well.
    x0 = pairs[0].action_rngs[0].standard_normal(5)
    x1 = pairs[1].action_rngs[0].standard_normal(5)
    assert not np.array_equal(x0, x1)


def test_ask_record_obs_frequency(small_table):
    prob = 0.3
    flags = np.array([ask(9, 4, k, small_table, 10, prob).record_obs for k in range(2_000)])
    assert flags.shape == (2_000, 2)
    # 4000 Bernoulli(0.3) draws: std of the mean ~0.0072.
    assert abs(flags.mean() - prob) < 0.03
    # Both members of the pair draw independently.
    assert abs(flags[:, 0].mean() - prob) < 0.04 and abs(flags[:, 1].mean() - prob) < 0.04
    assert np.any(flags[:, 0] != flags[:, 1])
    assert not any(any(ask(9, 4, k, small_table, 10, 0.0).record_obs) for k in range(100))
    assert all(all(ask(9, 4, k, small_table, 10, 1.0).record_obs) for k in range(100))


def test_ask_record_obs_frequency_reference_prob(small_table):
    flags = np.array([ask(3, 0, k, small_table, 10, 0.01).record_obs for k in range(3_000)])
    # 6000 draws at p = 0.01: expect 60 (std ~7.7).
    assert 25 <= flags.sum() <= 100


def test_eval_env_seed_deterministic_and_distinct_from_training_seeds(small_table):
    assert eval_env_seed(1, 2, 3) == eval_env_seed(1, 2, 3)
    assert isinstance(eval_env_seed(1, 2, 3), int)
    evals = [eval_env_seed(1, 0, k) for k in range(100)]
    assert len(set(evals)) == 100
    assert eval_env_seed(1, 0, 0) != eval_env_seed(1, 1, 0)
    assert eval_env_seed(1, 0, 0) != eval_env_seed(2, 0, 0)
    train = [ask(1, 0, k, small_table, 10, 0.01).env_seed for k in range(100)]
    assert set(evals).isdisjoint(train)
    assert all(e != t for e, t in zip(evals, train))
    for s in evals:
        assert 0 <= s < 2**31


# --------------------------------------------------------------------------------------------
# OpenES.gradient / tell
# --------------------------------------------------------------------------------------------

def reference_ranks(returns):
    """Centered ranks written out independently: rank = #smaller + #equal earlier (C order)."""
    flat = np.asarray(returns, dtype=np.float64).ravel()
    n = flat.size
    ranks = np.empty(n)
    for i in range(n):
        ranks[i] = np.sum(flat < flat[i]) + np.sum(flat[:i] == flat[i])
    return (ranks / (n - 1) - 0.5).reshape(np.shape(returns))


def reference_gradient(table, dim, noise_indices, returns):
    """g = sum_i (R+_i - R-_i) eps_i / (2n), in float64, with an explicit loop."""
    shaped = reference_ranks(returns)
    n = len(noise_indices)
    g = np.zeros(dim, dtype=np.float64)
    for i in range(n):
        eps = np.array(table.noise[noise_indices[i]:noise_indices[i] + dim], dtype=np.float64)
        g += (shaped[i, 0] - shaped[i, 1]) * eps
    return g / (2 * n)


def test_reference_ranks_helper_agrees_with_hand_values():
    # guard for the helper itself
    np.testing.assert_allclose(reference_ranks(np.array([2.0, 1.0, 2.0, 2.0])),
                               [1 / 3 - 0.5, -0.5, 2 / 3 - 0.5, 0.5])


@pytest.mark.parametrize("n_pairs", [1, 3, 40, 500, 501, 1203])
def test_gradient_matches_explicit_loop(n_pairs, small_table):
    dim = 9
    table = small_table
    rng = np.random.default_rng(n_pairs)
    theta = rng.standard_normal(dim).astype(np.float32)
    es = OpenES(theta, table)
    idx = rng.integers(0, table.size - dim + 1, size=n_pairs)
    returns = rng.standard_normal((n_pairs, 2)) * 50.0 + 10.0
    g = es.gradient(idx, returns)
    assert g.dtype == np.float32
    assert g.shape == (dim,)
    np.testing.assert_allclose(g, reference_gradient(table, dim, idx, returns),
                               rtol=1e-4, atol=1e-7)


def test_gradient_is_numpys_pair_by_pair_float32_sum_bit_for_bit(small_table):
    """The compiled sum rounds each pair's term to float32 and adds it, in pair order: the bits of
    numpy's multiply into a buffer and += (the package's sum before it was compiled), so a run's
    updates did not change."""
    dim, n = 37, 2_000
    rng = np.random.default_rng(5)
    idx = rng.integers(0, small_table.size - dim + 1, size=n)
    returns = rng.standard_normal((n, 2))
    shaped = centered_ranks(returns)
    g, term = np.zeros(dim, np.float32), np.empty(dim, np.float32)
    for index, weight in zip(idx, (shaped[:, 0] - shaped[:, 1]).astype(np.float32)):
        np.multiply(small_table.noise[index:index + dim], weight, out=term)
        g += term
    assert np.array_equal(OpenES(np.zeros(dim, np.float32), small_table).gradient(idx, returns), g / returns.size)
    with pytest.raises(IndexError, match="outside table"):
        OpenES(np.zeros(dim, np.float32), small_table).gradient(np.array([0, small_table.size - dim + 1]), returns[:2])


def test_gradient_of_many_pairs_with_permutation_returns(small_table):
    # 1100 pairs; returns are a permutation so the ranks are known exactly.
    dim = 6
    n = 1_100
    rng = np.random.default_rng(11)
    idx = rng.integers(0, small_table.size - dim + 1, size=n)
    perm = rng.permutation(2 * n)
    returns = perm.reshape(n, 2).astype(np.float64)
    shaped = perm.reshape(n, 2) / (2 * n - 1) - 0.5
    expected = np.zeros(dim)
    for i in range(n):
        expected += (shaped[i, 0] - shaped[i, 1]) * np.asarray(
            small_table.noise[idx[i]:idx[i] + dim], dtype=np.float64)
    expected /= 2 * n
    g = OpenES(np.zeros(dim, np.float32), small_table).gradient(idx, returns)
    np.testing.assert_allclose(g, expected, rtol=1e-4, atol=1e-7)


def test_gradient_hand_computed_two_pairs_not_divided_by_sigma():
    # Tiny table, hand-computable: eps_0 = noise[0:2], eps_1 = noise[3:5].
    table = NoiseTable(8, seed=0)
    noise = np.array(table.noise, dtype=np.float64)
    returns = np.array([[4.0, 1.0],    # ranks 3, 0 -> +0.5, -0.5 -> w0 = 1
                        [2.0, 3.0]])   # ranks 1, 2 -> -1/6, +1/6 -> w1 = -1/3
    expected = (1.0 * noise[0:2] - (1 / 3) * noise[3:5]) / 4
    g = OpenES(np.zeros(2, np.float32), table).gradient(np.array([0, 3]), returns)
    np.testing.assert_allclose(g, expected, rtol=1e-6)
    # Scale of returns is irrelevant (rank shaping) and nothing depends on sigma.
    g2 = OpenES(np.zeros(2, np.float32), table).gradient(np.array([0, 3]), returns * 1e4)
    np.testing.assert_array_equal(g, g2)


def test_gradient_swapping_signs_negates(small_table):
    dim = 5
    rng = np.random.default_rng(2)
    idx = rng.integers(0, small_table.size - dim + 1, size=30)
    returns = rng.standard_normal((30, 2))
    es = OpenES(np.zeros(dim, np.float32), small_table)
    np.testing.assert_allclose(es.gradient(idx, returns[:, ::-1].copy()),
                               -es.gradient(idx, returns), atol=1e-7)


def test_tell_matches_independent_adam_with_l2(small_table):
    dim = 8
    rng = np.random.default_rng(5)
    theta0 = rng.standard_normal(dim).astype(np.float32)
    lr, l2 = 0.02, 0.005
    es = OpenES(theta0, small_table, stepsize=lr, l2coeff=l2)
    assert es.theta is not theta0
    theta = theta0.astype(np.float64)
    m = np.zeros(dim)
    v = np.zeros(dim)
    b1, b2, eps_adam = 0.9, 0.999, 1e-8
    for t in range(1, 5):
        n = 20 + 7 * t
        idx = rng.integers(0, small_table.size - dim + 1, size=n)
        returns = rng.standard_normal((n, 2))
        g = reference_gradient(small_table, dim, idx, returns)
        grad = -g + l2 * theta
        a = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad ** 2
        step = -a * m / (np.sqrt(v) + eps_adam)
        expected_ratio = np.linalg.norm(step) / np.linalg.norm(theta)
        theta = theta + step
        ratio = es.tell(idx, returns)
        assert es.theta.dtype == np.float32
        np.testing.assert_allclose(es.theta, theta, rtol=1e-5, atol=1e-6)
        assert ratio == pytest.approx(expected_ratio, rel=1e-3)
        assert es.optimizer.t == t
    # The caller's array was copied, not updated in place.
    assert not np.allclose(theta0, es.theta)


def test_tell_l2_decay_alone_when_gradient_cancels(small_table):
    # Two pairs on the same noise index with mirrored returns cancel exactly:
    # values [1, 0, 0, 1] -> ranks [2, 0, 1, 3] -> centered [1/6, -1/2, -1/6, 1/2]
    # -> w0 = 2/3, w1 = -2/3 -> g = 0, so Adam steps on l2coeff * theta only.
    dim = 4
    theta0 = np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    es = OpenES(theta0, small_table, stepsize=0.01, l2coeff=0.005)
    idx = np.array([10, 10])
    returns = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(es.gradient(idx, returns), np.zeros(dim), atol=1e-7)
    es.tell(idx, returns)
    # Adam's first step on l2*theta: -lr * sign(theta)
    np.testing.assert_allclose(es.theta, theta0 - 0.01 * np.sign(theta0), rtol=1e-5)


def test_tell_improves_quadratic_fitness():
    dim = 6
    sigma = 0.05
    n = 40
    target = np.array([0.3, -0.25, 0.2, -0.35, 0.15, 0.3])
    noise = NoiseTable(50_000, seed=1)
    rng = np.random.default_rng(0)
    theta0 = (1e-3 * rng.standard_normal(dim)).astype(np.float32)
    es = OpenES(theta0, noise, stepsize=0.02, l2coeff=0.005)

    def fitness(x):
        return -np.sum((x - target) ** 2)

    start = np.linalg.norm(es.theta - target)
    for _ in range(50):
        idx = np.array([noise.sample_index(rng, dim) for _ in range(n)])
        returns = np.empty((n, 2))
        for i, j in enumerate(idx):
            eps = noise.get(int(j), dim).astype(np.float64)
            returns[i] = fitness(es.theta + sigma * eps), fitness(es.theta - sigma * eps)
        es.tell(idx, returns)
    end = np.linalg.norm(es.theta - target)
    assert end < 0.15 * start
    # Every coordinate moved in the right direction.
    assert np.all(np.sign(es.theta) == np.sign(target))


@pytest.mark.parametrize(("dim", "workers"), [(37, 1), (37, 2), (37, 5), (37, 18), (5, 18), (1_000, 7)])
def test_a_host_update_cut_into_slices_is_the_whole_update(dim, workers, small_table, tmp_path, monkeypatch):
    """``host_state.slices`` cuts an update into one slice per process (at least ``SLICE``
    parameters each: 4 here), and the slices computed apart (``compute_slice``, as a host's
    processes do in scalar mode) are bit for bit the whole update, Adam's moments included."""
    from esrepro.distributed import host_state

    monkeypatch.setattr(host_state, "SLICE", 4)
    bounds = host_state.slices(dim, workers)
    assert len(bounds) == max(1, min(workers, dim // 4))
    assert [lo for lo, _ in bounds] == [0] + [hi for _, hi in bounds[:-1]] and bounds[-1][1] == dim
    assert all(hi - lo >= min(4, dim) for lo, hi in bounds)

    rng = np.random.default_rng(dim + workers)
    theta = rng.standard_normal(dim).astype(np.float32)
    es = OpenES(theta, small_table, stepsize=0.02, l2coeff=0.005)
    previous = host_state.Version.open(tmp_path / "previous.bin", dim, 0, create=True)
    new = host_state.Version.open(tmp_path / "new.bin", dim, 0, create=True)
    previous.write(es.state(), es.theta, None, None)
    for t in range(2):  # the second step from non-zero moments
        idx = rng.integers(0, small_table.size - dim + 1, size=30)
        returns = rng.standard_normal((30, 2))
        for lo, hi in bounds:
            host_state.compute_slice(previous, new, lo, hi, t, small_table, 0.02, 0.005, idx, returns)
        es.step(idx, returns)
        state = es.state()
        for got, expected in ((new.theta, state.theta), (new.adam_m, state.adam_m), (new.adam_v, state.adam_v)):
            assert np.array_equal(got, expected)
        previous, new = new, previous
