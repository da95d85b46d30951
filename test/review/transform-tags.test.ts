import { strict as assert } from 'node:assert';
import { isNormaError } from '../../src/errors.js';
import { loadBinaryen, transformModule } from '../../src/runtime/transform.js';
import { wat } from '../support/fixtures.js';

describe('review: imports the transform must refuse', function () {
  this.timeout(30_000);

  it('an imported exception tag: refused before anything runs, with a stable code', async () => {
    const b = await loadBinaryen();
    const bytes = await wat(
      `(module (import "env" "oops" (tag $t (param i32))) (memory 1)
         (func (export "_start") (throw $t (i32.const 1))))`,
      b.Features.ExceptionHandling,
    );
    await assert.rejects(transformModule(bytes, { preempt: false }), (error: unknown) => {
      assert.ok(isNormaError(error), `not a NormaError: ${error}`);
      assert.equal(error.code, 'MODULE_IMPORT_MISSING');
      assert.match(error.message, /env\.oops/);
      return true;
    });
  });
});
