import { goldenFiles } from '../testkit/golden.js';

/** For tests only: src/datapath/testdata. */
export const { TESTDATA, golden } = goldenFiles('datapath');
