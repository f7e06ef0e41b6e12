import { goldenFiles } from '../testkit/golden.js';

/** For tests only: golden files and real iperf3 output in src/perf/testdata. */
export const { TESTDATA, golden, testdata } = goldenFiles('perf');
