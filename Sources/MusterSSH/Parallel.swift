import Foundation

extension SSH {
    /// Calls `body` for every item, at most `parallel` at a time; results in input order.
    public static func boundedMap<T: Sendable, R: Sendable>(
        _ items: [T], parallel: Int, _ body: @escaping @Sendable (T) async -> R
    ) async -> [R] {
        await withTaskGroup(of: (Int, R).self) { group in
            var results = [R?](repeating: nil, count: items.count)
            var next = 0
            let cap = max(1, parallel)
            while next < min(cap, items.count) {
                let index = next
                group.addTask { (index, await body(items[index])) }
                next += 1
            }
            while let (index, result) = await group.next() {
                results[index] = result
                if next < items.count {
                    let index = next
                    group.addTask { (index, await body(items[index])) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }
}
