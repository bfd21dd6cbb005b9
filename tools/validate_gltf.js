// Validate a glTF/GLB file with the Khronos validator; prints the report as JSON.
const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");
const file = process.argv[2];
const data = new Uint8Array(fs.readFileSync(file));
const dir = path.dirname(file);
validator
  .validateBytes(data, {
    uri: path.basename(file),
    externalResourceFunction: (uri) =>
      new Promise((resolve, reject) => {
        try { resolve(new Uint8Array(fs.readFileSync(path.join(dir, decodeURIComponent(uri))))); }
        catch (e) { reject(e.toString()); }
      }),
  })
  .then((report) => console.log(JSON.stringify(report)))
  .catch((e) => { console.error(e); process.exit(1); });
