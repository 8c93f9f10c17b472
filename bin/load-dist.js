// Loads a module of the compiled package; in a checkout that was never built, says how to build it
// instead of Node's bare ERR_MODULE_NOT_FOUND.
export async function loadDist (rel) {
  const url = new URL(`../dist/${rel}`, import.meta.url)
  try {
    return await import(url.href)
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && err.url === url.href) {
      process.stderr.write(`pagegift: ${url.pathname} is missing: this checkout is not built. Run \`npm run build\`.\n`)
      process.exit(1)
    }
    throw err
  }
}
