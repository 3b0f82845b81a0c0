"""The plugin author's one line: mer-bench's conformance suite on this method."""

from mer_nearest_mean import NearestMean

from mer_bench.testing import check_method


def test_nearest_mean_honours_the_method_contract():
    check_method(NearestMean)
