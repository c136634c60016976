"""Tests of hyperspy_lacbed.crystal.scattering (elastic and Bird & King absorptive factors)."""

from __future__ import annotations

import json
import time
from importlib import resources

import numpy as np
import pytest

from hyperspy_lacbed.crystal import scattering as sc
from hyperspy_lacbed.crystal.scattering import (
    ELEMENTS,
    TABLES,
    absorptive_scattering_factor,
    atomic_number,
    scattering_factor,
)

# ---------------------------------------------------------------------------------------
# Independent copies of the published coefficients, as stored by abTEM
# (abtem/parametrizations/data/{kirkland,lobato}.json); our tables come from Felix-python.
# Kirkland: rows a(3), b(3), c(3), d(3). Lobato: rows a(5), b(5).
# ---------------------------------------------------------------------------------------
ABTEM_KIRKLAND = {
    "O": [
        [0.339969204, 0.307570172, 0.130369072],
        [0.38157028, 0.381571436, 19.1919745],
        [0.0883326058, 0.1965867, 0.00099622],
        [0.760635525, 2.07401094, 0.0303266869],
    ],
    "Si": [
        [1.06543892, 0.120143691, 0.180915263],
        [1.04118455, 68.7113368, 0.0887533926],
        [1.1206562, 0.0305452816, 1.59963502],
        [3.70062619, 0.214097897, 9.99096638],
    ],
    "Mn": [
        [0.326697613, 0.717297, 1.33212464],
        [0.0888813083, 11.1300198, 0.582141104],
        [0.280801702, 1.15499241, 0.0111984488],
        [0.671583145, 12.6825395, 0.0532334467],
    ],
    "Sr": [
        [0.0137373086, 1.97548672, 1.59261029],
        [0.0187469061, 6.3607923, 0.221992482],
        [0.173263882, 4.66280378, 0.0016126506],
        [0.201624958, 25.3027803, 0.0153610568],
    ],
    "Sn": [
        [2.1664462, 0.688691021, 1.92431751],
        [11.3174909, 0.110131285, 0.674464853],
        [0.565359888, 0.918683861, 0.0780542213],
        [0.73356461, 10.2310312, 0.0931104308],
    ],
    "Au": [
        [0.961263398, 3.6958103, 2.77567491],
        [0.170932277, 12.9335319, 0.68999707],
        [0.295414176, 0.311475743, 0.0143237267],
        [0.16352551, 1.39200901, 0.0271265337],
    ],
    "U": [
        [4.63343606, 3.18157056, 0.876455075],
        [16.3377267, 0.569517868, 0.0688860012],
        [0.221685477, 0.2729171, 0.0111737298],
        [0.098425455, 0.409470917, 0.018621541],
    ],
}

ABTEM_LOBATO = {
    "O": [
        [
            29.9474045242362,
            -77.6101266255278,
            99.8817764623144,
            -51.2127005505673,
            0.00819618954446032,
        ],
        [
            1.3028398788001,
            1.15794105258309,
            1.00988549338025,
            0.943327971433266,
            0.0433197611321825,
        ],
    ],
    "Si": [
        [
            2.87189142611612,
            -2.06173501195173,
            2.17114024204478,
            -0.0663073633058801,
            0.00301070709670513,
        ],
        [
            5.08487103642989,
            0.429178185305126,
            0.366485434192162,
            0.119710611296903,
            0.0143994536128397,
        ],
    ],
    "Mn": [
        [
            4.37417550633122,
            -160.925510918779,
            160.273308060322,
            0.0312303861049162,
            0.00034696602102094,
        ],
        [
            5.51031705504928,
            1.68798216402433,
            1.66614047777702,
            0.0483370390321277,
            0.00364746960053068,
        ],
    ],
    "Sn": [
        [
            5.14222074642053,
            -25.4945413762576,
            25.7414487548601,
            0.111778227592199,
            0.00029364738473774,
        ],
        [
            5.27272636474484,
            1.53194959209148,
            1.40257525040087,
            0.0611685387263086,
            0.00107560815394522,
        ],
    ],
    "Au": [
        [
            1.6759346706487,
            3.00486602969729,
            0.595340013161635,
            0.0117163186623094,
            4.296782976398e-05,
        ],
        [
            5.52231093211402,
            1.38007223007196,
            0.162229237655945,
            0.00901814890416575,
            0.00037927766747767,
        ],
    ],
    "U": [
        [
            6.21070826784019,
            3.03934453825623,
            0.437339984439162,
            0.00680714764147316,
            6.182293277e-08,
        ],
        [
            10.0214105859162,
            1.10399880155883,
            0.107218973162453,
            0.00502432130850682,
            6.005069941972e-05,
        ],
    ],
}

# Bird & King f' parametrised by Thomas et al. (Felix-python pylix_modules/thomas.py,
# Si = thomas[13], rows for B = 0.4 and 0.5 Å²): f' = (c/v) F(s) with s = |g|/2 and
# F = Σ_{i=1..4} A_i exp(-|B_i| s²) + C, before the Debye–Waller factor.
THOMAS_SI = {
    0.4: [
        0.0009671377290128801,
        17.463340460524105,
        0.02251434158309113,
        0.15160162395753385,
        0.008185213227399065,
        1.2097437269932005,
        0.0020273456236349083,
        5.5144151554481535,
        -0.010129289167500817,
    ],
    0.5: [
        0.0023896754105518087,
        11.8881087051502,
        0.01374041243237393,
        0.23621182231300988,
        0.012285636456873595,
        0.23620816939008668,
        0.007751465197539657,
        1.8403956674936763,
        -0.009301290264510625,
    ],
}


def _beta(voltage: float) -> float:
    gamma = 1.0 + voltage / 510998.95
    return np.sqrt(1.0 - 1.0 / gamma**2)


# ---------------------------------------------------------------------------------------
# Elements
# ---------------------------------------------------------------------------------------


def test_elements_tuple():
    assert isinstance(ELEMENTS, tuple)
    assert len(ELEMENTS) == 103
    assert ELEMENTS[0] == "H" and ELEMENTS[13] == "Si" and ELEMENTS[102] == "Lr"
    assert len(set(ELEMENTS)) == 103


@pytest.mark.parametrize(
    ("symbol", "z"),
    [
        ("Si", 14),
        ("si", 14),
        ("SI", 14),
        ("Si4+", 14),
        ("Si1", 14),
        (" Si ", 14),
        ("Ga3+", 31),
        ("O2-", 8),
        ("O-2", 8),
        ("Fe", 26),
        ("fe2+", 26),
        ("H", 1),
        ("Lr", 103),
        ("co", 27),
        ("Sr", 38),
        ("As", 33),
    ],
)
def test_atomic_number(symbol, z):
    assert atomic_number(symbol) == z
    assert (
        ELEMENTS[atomic_number(symbol) - 1].lower()
        == symbol.strip().rstrip("0123456789+-").lower()
    )


@pytest.mark.parametrize("symbol", ["Xx", "Q", "", "4+", "Uuo", "Sii", "Sx2+"])
def test_atomic_number_unknown(symbol):
    with pytest.raises(ValueError, match="Unknown element") as info:
        atomic_number(symbol)
    assert "expected an element symbol" in str(info.value)


def test_atomic_number_names_the_element():
    with pytest.raises(ValueError, match="Unknown element 'Xx'"):
        atomic_number("Xx")
    with pytest.raises(ValueError, match=r"'Sx'.*'Sx2\+'"):
        atomic_number("Sx2+")
    with pytest.raises(ValueError, match="Unknown element"):
        atomic_number(14)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_tables_ship_with_sources(table):
    text = (resources.files("hyperspy_lacbed.crystal") / "data" / f"{table}.json").read_text(
        encoding="utf-8"
    )
    data = json.loads(text)
    assert data["name"] == table
    assert data["reference"] and data["source"] and data["formula"]
    assert list(data["parameters"]) == list(ELEMENTS)
    ncol = {"kirkland": 12, "lobato": 10}[table]
    assert all(len(row) == ncol for row in data["parameters"].values())
    assert (resources.files("hyperspy_lacbed.crystal") / "data" / "README.md").is_file()


Q_CHECK = np.array([0.0, 0.3, 1.0, 2.5, 6.0])


@pytest.mark.parametrize("element", sorted(ABTEM_KIRKLAND))
def test_kirkland_matches_independent_copy(element):
    a, b, c, d = (np.array(r) for r in ABTEM_KIRKLAND[element])
    q2 = Q_CHECK[:, None] ** 2
    expected = np.sum(a / (q2 + b) + c * np.exp(-d * q2), axis=1)
    np.testing.assert_allclose(scattering_factor(element, Q_CHECK), expected, rtol=1e-8)


@pytest.mark.parametrize("element", sorted(ABTEM_LOBATO))
def test_lobato_matches_independent_copy(element):
    a, b = (np.array(r) for r in ABTEM_LOBATO[element])
    bq2 = b * Q_CHECK[:, None] ** 2
    expected = np.sum(a * (2 + bq2) / (1 + bq2) ** 2, axis=1)
    np.testing.assert_allclose(
        scattering_factor(element, Q_CHECK, table="lobato"), expected, rtol=1e-8
    )


def test_known_values_silicon():
    # Kirkland (2010) Appendix C coefficients summed by hand: f(0) = Σ a/b + Σ c.
    f0 = 1.06543892 / 1.04118455 + 0.120143691 / 68.7113368 + 0.180915263 / 0.0887533926
    f0 += 1.1206562 + 0.0305452816 + 1.59963502
    assert f0 == pytest.approx(5.814284, rel=1e-6)
    np.testing.assert_allclose(
        scattering_factor("Si", [0.0, 0.5, 1.0, 1.5]),
        [5.814284, 1.965830, 0.742282, 0.421913],
        rtol=1e-4,
    )
    # Lobato & Van Dyck: f(0) = 2 Σ a_i.
    np.testing.assert_allclose(
        scattering_factor("Si", [0.0, 0.5, 1.0, 1.5], "lobato"),
        [5.836000, 1.967708, 0.742909, 0.421356],
        rtol=1e-4,
    )
    assert float(scattering_factor("Sn", 0.0)) == pytest.approx(10.85999, rel=1e-4)


@pytest.mark.parametrize("element", ["Si", "Ga", "As", "O", "Sr"])
def test_kirkland_and_lobato_agree(element):
    q = np.linspace(0.0, 2.0, 201)
    k = scattering_factor(element, q, "kirkland")
    lo = scattering_factor(element, q, "lobato")
    np.testing.assert_allclose(lo, k, rtol=0.03)


def test_all_elements_consistent():
    """Every row of both tables: positive, decreasing, and the two fits within 12 %."""
    q = np.linspace(0.0, 6.0, 241)
    inner = q <= 2.0
    for z in range(1, 104):
        k = scattering_factor(z, q, "kirkland")
        lo = scattering_factor(z, q, "lobato")
        for f in (k, lo):
            assert np.all(f > 0), ELEMENTS[z - 1]
            assert np.all(np.diff(f) < 0), ELEMENTS[z - 1]
        assert np.max(np.abs(lo[inner] / k[inner] - 1)) < 0.12, ELEMENTS[z - 1]


def test_scattering_factor_shapes_and_aliases():
    q = np.linspace(0, 3, 12).reshape(3, 4)
    f = scattering_factor("Ga", q)
    assert f.shape == (3, 4) and f.dtype == np.float64
    assert np.ndim(scattering_factor("Ga", 0.5)) == 0
    np.testing.assert_array_equal(scattering_factor(31, q), f)
    np.testing.assert_array_equal(scattering_factor("Ga3+", q), f)
    np.testing.assert_array_equal(scattering_factor("Ga", -q), f)
    np.testing.assert_array_equal(scattering_factor("Ga", q, table="Kirkland"), f)


def test_scattering_factor_errors():
    with pytest.raises(ValueError, match="Unknown element 'Xx'"):
        scattering_factor("Xx", 0.5)
    with pytest.raises(ValueError, match="Z=0"):
        scattering_factor(0, 0.5)
    with pytest.raises(ValueError, match="Z=104"):
        scattering_factor(104, 0.5)
    with pytest.raises(ValueError, match=r"'peng'.*'kirkland'.*'lobato'"):
        scattering_factor("Si", 0.5, table="peng")
    with pytest.raises(ValueError, match=r"'peng'.*'kirkland'.*'lobato'"):
        absorptive_scattering_factor("Si", 0.5, 0.5, 200e3, table="peng")
    with pytest.raises(ValueError, match="Unknown element 'Qq'"):
        absorptive_scattering_factor("Qq", 0.5, 0.5, 200e3)


# ---------------------------------------------------------------------------------------
# Absorptive form factor (Bird & King 1990)
# ---------------------------------------------------------------------------------------


def test_absorptive_positive_and_decreasing_at_small_g():
    q = np.linspace(0.0, 1.0, 21)
    for element in ("Si", "Ga", "As", "O", "Au"):
        fp = absorptive_scattering_factor(element, q, b_iso=0.5, voltage=200e3)
        assert np.all(fp > 0), element
        assert np.all(np.diff(fp) < 0), element


def test_absorptive_vanishes_without_thermal_motion():
    q = np.array([0.0, 0.5, 2.0])
    np.testing.assert_array_equal(absorptive_scattering_factor("Si", q, 0.0, 200e3), 0.0)
    small = absorptive_scattering_factor("Si", q, 1e-8, 200e3)
    assert np.all(np.abs(small) < 1e-8)


def test_absorptive_scales_with_small_b():
    """f' ∝ B up to a logarithm: the Coulomb tail f_e ~ 1/q² makes f'(0) ~ B ln(1/B)."""
    q = np.array([0.0, 0.5, 2.0])
    b_values = [1e-2, 1e-3, 1e-4, 1e-5]
    fp = [absorptive_scattering_factor("Si", q, b, 200e3) for b in b_values]
    doubled = [absorptive_scattering_factor("Si", q, 2 * b, 200e3) for b in b_values]
    ratios = np.array([d / f for d, f in zip(doubled, fp, strict=True)])
    assert np.all((ratios > 1.6) & (ratios < 2.0))
    assert np.all(np.diff(ratios, axis=0) > 0)  # tends to 2 as B -> 0
    scaled = np.array([f[0] / (b * np.log(1 / b)) for f, b in zip(fp, b_values, strict=True)])
    np.testing.assert_allclose(scaled, scaled.mean(), rtol=0.03)


def test_absorptive_voltage_dependence():
    """f' ∝ h/(m0 v) = λ_C/β, so U' = γ/(πΩ) f' ∝ γ/β (the TDS cross-section ∝ (γλ)²)."""
    q = np.array([0.0, 0.52, 1.5])
    f100 = absorptive_scattering_factor("Si", q, 0.47, 100e3)
    f300 = absorptive_scattering_factor("Si", q, 0.47, 300e3)
    np.testing.assert_allclose(f100 / f300, _beta(300e3) / _beta(100e3), rtol=1e-9)
    assert _beta(200e3) == pytest.approx(0.69531, abs=1e-5)


def test_absorptive_silicon_magnitude():
    """Si, 200 kV, B = 0.47 Å²: f'(0)/f(0) = 0.64 %, f'/(f e^{-Bs²}) = 1.8 % at 220."""
    f0 = float(scattering_factor("Si", 0.0))
    fp = absorptive_scattering_factor("Si", [0.0, np.sqrt(8) / 5.431], 0.47, 200e3)
    assert fp[0] / f0 == pytest.approx(0.006415, rel=2e-3)
    g220 = np.sqrt(8) / 5.431
    ratio_220 = fp[1] / (scattering_factor("Si", g220) * np.exp(-0.47 * g220**2 / 4))
    assert ratio_220 == pytest.approx(0.01808, rel=2e-3)


@pytest.mark.parametrize("b_iso", sorted(THOMAS_SI))
@pytest.mark.parametrize("voltage", [100e3, 200e3])
def test_absorptive_matches_thomas_parametrisation(b_iso, voltage):
    """Against the Bird & King fits of Thomas et al. used by Felix-python (Si)."""
    coeff = THOMAS_SI[b_iso]
    q = np.linspace(0.0, 3.0, 61)
    s = q / 2
    fit = sum(coeff[2 * i] * np.exp(-abs(coeff[2 * i + 1]) * s**2) for i in range(4)) + coeff[8]
    expected = fit / _beta(voltage) * np.exp(-b_iso * s**2)
    fp = absorptive_scattering_factor("Si", q, b_iso, voltage)
    assert np.max(np.abs(fp - expected)) < 1.5e-3 * fp[0]


def test_absorptive_quadrature_against_adaptive():
    """Fixed Gauss–Legendre rule vs. scipy.quad in polar coordinates about k = 0."""
    from scipy import integrate

    b_iso, voltage, q = 0.47, 200e3, 0.8

    def f(k2):
        return float(scattering_factor("Si", np.sqrt(k2)))

    def radial(rho):
        def angular(theta):
            k2b = q * q + rho * rho - 2 * q * rho * np.cos(theta)
            bracket = np.exp(-b_iso * q * q / 4) - np.exp(-b_iso * (rho * rho + k2b) / 4)
            return f(rho * rho) * f(k2b) * bracket

        return 2 * rho * integrate.quad(angular, 0, np.pi, epsabs=0, epsrel=1e-10, limit=200)[0]

    total = sum(
        integrate.quad(radial, lo, hi, epsabs=0, epsrel=1e-9, limit=200)[0]
        for lo, hi in [(0, q), (q, 2 * q + 5), (2 * q + 5, np.inf)]
    )
    expected = total * 0.024263102386 / (2 * _beta(voltage))
    fp = absorptive_scattering_factor("Si", q, b_iso, voltage)
    assert float(fp) == pytest.approx(expected, rel=1e-7)


def test_absorptive_shapes_tables_and_symmetry():
    q = np.array([[0.0, 0.5], [1.0, 0.5]])
    fp = absorptive_scattering_factor("Ga3+", q, 0.6, 200e3)
    assert fp.shape == (2, 2)
    assert fp[0, 1] == fp[1, 1]
    np.testing.assert_array_equal(absorptive_scattering_factor(31, -q, 0.6, 200e3), fp)
    assert np.ndim(absorptive_scattering_factor("Ga", 0.5, 0.6, 200e3)) == 0
    lob = absorptive_scattering_factor("Ga", q, 0.6, 200e3, table="lobato")
    np.testing.assert_allclose(lob, fp, rtol=0.05)


@pytest.mark.parametrize(("b_iso", "voltage"), [(-0.1, 200e3), (0.5, 0.0), (0.5, -1.0)])
def test_absorptive_invalid_arguments(b_iso, voltage):
    with pytest.raises(ValueError):
        absorptive_scattering_factor("Si", 0.5, b_iso, voltage)


def test_absorptive_is_fast_for_many_g():
    rng = np.random.default_rng(0)
    q = rng.uniform(0.0, 4.0, 1000)
    start = time.perf_counter()
    for element in ("Ga", "As"):
        fp = absorptive_scattering_factor(element, q, 0.6, 200e3)
        assert fp.shape == q.shape
    assert time.perf_counter() - start < 5.0


def test_module_constants():
    assert sc._COMPTON_WAVELENGTH == pytest.approx(0.0242631023867, rel=1e-10)
    assert sc._REST_ENERGY_V == pytest.approx(510998.95, rel=1e-8)
