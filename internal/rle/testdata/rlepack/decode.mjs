// decode.mjs runs @thi.ng/rle-pack, the RLE codec of the Label Studio editor,
// for the Go tests in internal/rle (rlepack_test.go).
//
// stdin: a JSON array of items, each either
//   {"rle": [byte, ...]}    decoded with decode (the name the editor imports)
//   {"words": [byte, ...]}  encoded with encode, as the editor's exportRLE does
// stdout: a JSON array with one entry per item, in order:
//   {"length": n, "bytesPerWord": b, "runs": [[value, count], ...]}  for "rle"
//   {"rle": [byte, ...]}                                             for "words"
//   {"error": "message"}                                             if it throws
import { decode, encode } from "@thi.ng/rle-pack";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const items = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const runs = (words) => {
	const out = [];
	for (let i = 0; i < words.length; ) {
		let j = i;
		while (j < words.length && words[j] === words[i]) j++;
		out.push([words[i], j - i]);
		i = j;
	}
	return out;
};

const results = items.map((item) => {
	try {
		if (item.words !== undefined) {
			const words = Uint8Array.from(item.words);
			return { rle: Array.from(encode(words, words.length)) };
		}
		const words = decode(Uint8Array.from(item.rle));
		return {
			length: words.length,
			bytesPerWord: words.BYTES_PER_ELEMENT,
			runs: runs(words),
		};
	} catch (e) {
		return { error: String(e && e.message ? e.message : e) };
	}
});
process.stdout.write(JSON.stringify(results));
