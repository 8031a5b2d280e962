// The ending every bench script shares: run `main`, exit 0, or print the error's stack and exit 1
// (client processes and brokers it left would otherwise keep the process alive).

/** @param {() => Promise<unknown>} main */
export function runMain(main) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e instanceof Error ? e.stack : e);
      process.exit(1);
    },
  );
}
