/**
 * Mocha setup: in CI (CI=true) property tests run with a fixed fast-check seed, so a run is reproducible
 * and a submission's result does not depend on chance; locally each run draws new cases.
 */
import fc from 'fast-check';

if (process.env.CI) fc.configureGlobal({ seed: 20261121 });
