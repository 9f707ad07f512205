/**
 * Commands whose code needs a package the CLI declares as an optional peer (serve: @llava-mini/server
 * with Fastify; batch and worker: @llava-mini/batch with BullMQ; eval: @llava-mini/shapes): their
 * modules are imported only when they run, so `llava-mini ask` never loads them, and a missing
 * package is one clear line instead of a stack trace.
 */
export class MissingPackageError extends Error {}

/**
 * `load()` is the command's own `import()` with a literal specifier (so the bundler and the import
 * graph see it); a failure to find `pkg` while loading says what to install.
 */
export async function loadOptional<T>(pkg: string, command: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((e as Error).message).includes(pkg)) {
      throw new MissingPackageError(`'llava-mini ${command}' needs ${pkg}, which is not installed: npm install ${pkg}`);
    }
    throw e;
  }
}
