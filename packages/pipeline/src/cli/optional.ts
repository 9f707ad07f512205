/**
 * Commands whose code lives in a package the CLI does not depend on (batch and worker in
 * @llava-mini/batch, with BullMQ): imported only when run, so `llava-mini ask` never loads them and
 * a missing package is one clear line instead of a stack trace.
 */
export class MissingPackageError extends Error {}

export async function importOptional<T>(pkg: string, command: string): Promise<T> {
  try {
    // A variable specifier: neither the bundler nor tsc follow it into a package that may be absent.
    const specifier: string = pkg;
    return (await import(specifier)) as T;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((e as Error).message).includes(pkg)) {
      throw new MissingPackageError(`'llava-mini ${command}' needs ${pkg}, which is not installed: npm install ${pkg}`);
    }
    throw e;
  }
}
